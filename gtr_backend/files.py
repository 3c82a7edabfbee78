"""Writing files all or nothing, checking where they will go before any work starts, and checking that a file
given to be read is one.

Every file the project writes for a user (meshes, textures, weights, reports, job folders) goes through
`atomic_write`: the content is written to a temporary file beside the target, flushed to disk, and only then
renamed over the target with `os.replace` (atomic on POSIX and Windows). A failure part-way (disk full, a
file size limit, an exception in the writer, Ctrl+C) leaves the old file exactly as it was and no temporary
file behind. A group of files (an OBJ with its MTL and texture) is written file by file this way, the file
that names the others last, so an interrupted group never leaves a file that points at a half-written one.

`input_problem` says why a path given to be read (an image, a camera file, weights) cannot be: missing, a
folder, a device or a pipe (which would block a reader), a NUL character in its name.

No torch here: the add-on imports this module as well.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import GTRError


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that go by the suffix still work); when
    the block ends without an exception, the written file replaces `path`. On any exception the temporary file
    is removed and `path` is untouched."""
    path = Path(path)
    while True:  # like tempfile.mkstemp, but with the permissions a new file gets (umask), not 0600
        temporary = path.with_name(f".{path.stem}-{secrets.token_hex(4)}.part{path.suffix}")
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temporary
        _fsync(temporary)
        if path.is_file():
            shutil.copymode(path, temporary)  # a replaced file keeps its permissions
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write(path: Path | str, data: bytes | str | Callable[[Path], object]) -> Path:
    """Write `data` (bytes, text, or a function that writes the file it is given) to `path` all or nothing."""
    with atomic_path(path) as temporary:
        if isinstance(data, bytes):
            temporary.write_bytes(data)
        elif isinstance(data, str):
            temporary.write_text(data, encoding="utf-8")
        else:
            data(temporary)
    return Path(path)


def check_output(path: Path | str, suffixes: tuple[str, ...] = (), what: str = "output") -> Path:
    """Check, before any work, that `path` can be written: a known suffix, not a folder, a folder above it that
    exists and takes new files. Returns `path` as a Path; raises GTRError saying what to change."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise GTRError(
            f"{path}: unknown {what} format {path.suffix or '(none)'!r}; end the name in {', '.join(suffixes)}"
        )
    if path.is_dir():
        raise GTRError(
            f"{path} is a folder; give the {what} a file name, e.g. {path / ('out' + (suffixes or ('',))[0])}"
        )
    folder = path.parent
    if not folder.is_dir():
        raise GTRError(f"{path}: the folder {folder} does not exist; create it or write somewhere else")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise GTRError(f"{path}: cannot write in {folder} ({error.strerror or error}); write somewhere else") from None
    return path


def name_problem(path: Path | str, what: str = "file") -> str | None:
    """Why `path` cannot name a `what` at all (a NUL character in it, which no file system takes), or None."""
    if "\0" in str(path):
        return f"{str(path)!r}: the path contains a NUL character; give the {what}'s path without one"
    return None


def input_problem(path: Path | str, what: str = "file") -> str | None:
    """Why `path` cannot be read as a `what` ("image file", "weights file", ...), as a message that names it and
    says what to give instead; None when it is a regular file (or a link to one)."""
    problem = name_problem(path, what)
    if problem:
        return problem
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{path}: {what} not found"
    except OSError as error:
        return f"{path}: cannot open this {what} ({error.strerror or error}); check the path and its permissions"
    if stat.S_ISDIR(mode):
        return f"{path} is a folder; give the {what} itself"
    if not stat.S_ISREG(mode):
        return f"{path} is a device, a pipe or a socket, not a file; give the {what} saved on disk"
    return None
