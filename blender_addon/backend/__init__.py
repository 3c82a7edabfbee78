"""Talking to gtr_backend: in a separate Python process (JSON lines) or inside Blender, one interface for both."""

from .client import Backend, BackendError, InProcessBackend, Job, SubprocessBackend, backend_for, shutdown_all

__all__ = ["Backend", "BackendError", "InProcessBackend", "Job", "SubprocessBackend", "backend_for", "shutdown_all"]
