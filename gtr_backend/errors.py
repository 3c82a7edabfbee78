"""The errors `gtr_backend` raises on purpose.

Every error a user can cause (bad files, bad cameras, bad weights) is a `GTRError` whose message says which
file or view is at fault, what is wrong, and what to do about it. The command line prints the message alone,
never a traceback; the Blender add-on shows it in the status bar.
"""

from __future__ import annotations


class GTRError(Exception):
    """Base class of the errors a user can act on."""


class ViewError(GTRError):
    """A view set cannot be used: unreadable image, missing mask, bad camera, too few views, ..."""


class WeightsError(GTRError):
    """A weights file cannot be loaded: missing, corrupt, truncated, or made for another architecture."""


class WriteError(GTRError):
    """A file or folder could not be written for the file system's reasons (no room, a file size limit, no
    permission); the old one, if any, is kept (`files.atomic_write`)."""


class ConfigError(GTRError):
    """A model configuration is inconsistent or names an unknown preset."""


class CancelledError(GTRError):
    """The caller cancelled a long operation (between two of its steps)."""


class OutOfMemoryError(GTRError):
    """The device ran out of memory; `retry_options` are lower settings (option name -> value, the names of
    `contract.RECONSTRUCT_OPTIONS`) that need less, for the caller to offer as a retry."""

    def __init__(self, message: str, retry_options: dict[str, object]) -> None:
        super().__init__(message)
        self.retry_options = retry_options
