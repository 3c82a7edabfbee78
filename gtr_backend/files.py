"""Writing files all or nothing, checking where they will go before any work starts, and checking that a file
given to be read is one.

Every file the project writes for a user (meshes, textures, weights, reports, job folders) goes through
`atomic_write`: the content is written to a temporary file beside the target, flushed to disk, and only then
renamed over the target with `os.replace` (atomic on POSIX and Windows). A failure part-way (disk full, a
file size limit, an exception in the writer, Ctrl+C) leaves the old file exactly as it was and no temporary
file behind; a write that fails for the file system's reasons (no room, a file size limit, no permission) is a
`WriteError`: one line naming the file and the cause, and that the old file is kept. A group of files (an OBJ
with its MTL and texture) is written file by file this way, the file that names the others last, so an
interrupted group never leaves a file that points at a half-written one.

A folder written all or nothing (a job folder, a view folder) is made in a hidden folder beside it
(`staged_folder`), which then takes its place (`replace_folder`): the old folder is moved aside first and
removed only once the new one is in place.

`input_problem` says why a path given to be read (an image, a camera file, weights) cannot be: missing, a
folder, a device or a pipe (which would block a reader), a NUL character in its name.

No torch here: the add-on imports this module as well.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import GTRError, WriteError

# What a failed write says, by its cause (the file system's errno), after "cannot write <file>: <strerror>".
_ADVICE = {
    errno.ENOSPC: "free some space or write somewhere else",
    errno.EDQUOT: "free some space or write somewhere else",
    errno.EFBIG: "the file system or a file size limit (ulimit -f) does not take a file this large",
    errno.EACCES: "write somewhere you may write",
    errno.EPERM: "write somewhere you may write",
    errno.EROFS: "the file system is read-only; write somewhere else",
}


def write_error(path: Path | str, error: OSError, kept: bool = True) -> WriteError:
    """`error` (from writing `path`) as one line for the user: the file, the cause, what to do, what is left."""
    cause = error.strerror or str(error) or type(error).__name__
    advice = _ADVICE.get(error.errno or 0)
    left = "the old one is kept" if kept else "nothing was written"
    return WriteError(f"cannot write {path}: {cause}{'; ' + advice if advice else ''}; {left}")


def _written_by_us(error: OSError) -> bool:
    """Whether an error raised while writing is the file system's refusal (not, say, a missing input file)."""
    return error.errno in _ADVICE or error.errno in (errno.EIO, errno.ENAMETOOLONG)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that go by the suffix still work); when
    the block ends without an exception, the written file replaces `path`. On any exception the temporary file
    is removed and `path` is untouched; the file system's refusals (no room, a size limit, no permission) are
    raised as a one-line `WriteError`."""
    path = Path(path)
    kept = path.exists()
    while True:  # like tempfile.mkstemp, but with the permissions a new file gets (umask), not 0600
        temporary = path.with_name(f".{path.stem}-{secrets.token_hex(4)}.part{path.suffix}")
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as error:
            raise write_error(path, error, kept) from None
    try:
        yield temporary
        _fsync(temporary)
        if path.is_file():
            shutil.copymode(path, temporary)  # a replaced file keeps its permissions
        os.replace(temporary, path)
    except OSError as error:
        if not _written_by_us(error):
            raise
        raise write_error(path, error, kept) from None
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


STAGING = "-gtr-staging-"  # in the names of the folders `staged_folder` makes, before the maker's process id


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove the staging folders that `staged_folder` made directly inside `root` (its job folders' parents:
    the jobs root, one level down) for processes that no longer run (a backend killed mid-write); nothing
    else is touched. Returns what was removed."""
    removed = []
    candidates = [*root.glob(f".*{STAGING}*"), *root.glob(f"*/.*{STAGING}*")] if root.is_dir() else []
    for path in candidates:
        pid = path.name.split(STAGING, 1)[1].split("-", 1)[0]
        if not pid.isdigit() or _running(int(pid)) or path.is_symlink() or not path.is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def staged_folder(folder: Path | str) -> Iterator[Path]:
    """Yield a new hidden folder beside `folder` to write its contents into; when the block ends without an
    exception, it takes `folder`'s place (`replace_folder`). On any exception it is removed and `folder` is
    untouched; the file system's refusals are raised as a one-line `WriteError`."""
    folder = Path(folder)
    kept = folder.exists()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}{STAGING}{os.getpid()}-", dir=folder.parent))
    except OSError as error:
        raise write_error(folder, error, kept) from None
    try:
        yield staging
        replace_folder(staging, folder)
    except OSError as error:
        if not _written_by_us(error):
            raise
        raise write_error(folder, error, kept) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(new: Path, old: Path) -> None:
    """Put folder `new` in the place of `old` (which may not exist): the old one is moved aside first and
    removed only once the new one is in place, so a failure leaves one complete folder there."""
    aside = old.with_name(f".{old.name}{STAGING}{os.getpid()}-old-{secrets.token_hex(2)}")
    if old.exists():
        os.replace(old, aside)
    try:
        os.replace(new, old)
    except OSError:
        if aside.exists():
            os.replace(aside, old)
        raise
    shutil.rmtree(aside, ignore_errors=True)


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
