"""nvdiffrast's CUDA plugin: built once per machine (on first use, or ahead with `gtr build-rasterizer`), never
waited on for ever.

nvdiffrast compiles its CUDA plugin the first time it is used (PyTorch's cpp_extension, with nvcc and ninja:
about 1-3 minutes) into a folder under torch's extension folder (`TORCH_EXTENSIONS_DIR`, by default
`~/.cache/torch_extensions/pyXY_cuNNN/`). While it builds, PyTorch holds a `lock` file in that folder; any other
process that wants the plugin waits until the file is gone. A build that is killed (Ctrl+C, a closed Blender, a
GPU job that ran out of time) leaves the file behind, and from then on every process waits on it for ever.

Here:
- every build by this package holds an operating-system lock (`GUARD` in the extension folder) that the system
  releases when the process ends, however it ends, so two of our processes never build at once and none waits
  on a dead one; and it writes `OWNER` (its pid, host and start) beside PyTorch's `lock` first;
- a `lock` whose build is over is *stale* and is removed before the plugin is loaded: its owner record names
  a process of this machine that no longer runs, or (no record of ours: another program's build, or another
  machine's) it is older than `STALE_AFTER_S` with no process working in its folder;
- what the build needs (nvcc, ninja) is checked first, and a build that cannot run or fails is a `BuildError`
  with one line that says why and what to do (the compiler's output goes to `LOG`); `get_rasterizer` then uses
  the PyTorch rasterizer;
- a build in progress in another process is a `BuildBusyError`, unless the caller asks to wait for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GTRError

PLUGIN_PREFIX = "nvdiffrast_plugin"  # nvdiffrast's build folders: nvdiffrast_plugin, nvdiffrast_plugin_<versions>
GUARD = "gtr-nvdiffrast.lock"  # in the extension folder: held (OS lock) while one of our processes builds
OWNER = "gtr-build-owner.json"  # beside PyTorch's `lock`: who builds (pid, host, process start)
LOG = "gtr-nvdiffrast-build.log"  # in the extension folder: the last failed build's compiler output
STALE_AFTER_S = 600.0  # a lock nobody of ours owns is stale after this long with no process working in its folder
OWNED_LIMIT_S = 3600.0  # no build takes an hour: a lock this old with no process in its folder is stale, owner or not
HEARTBEAT_S = 30.0  # how often a build in progress says so
EXPECTED = "usually 1-3 minutes, once per machine"

Say = Callable[[str], None]
_THREADS = threading.Lock()  # one thread of a process loads or builds at a time


class BuildError(GTRError):
    """nvdiffrast's plugin cannot be built or loaded here: one line with the reason and what to do."""


class BuildBusyError(BuildError):
    """Another process is building the plugin right now."""


class MissingToolsError(BuildError):
    """What a build needs (nvcc, ninja, a C++ compiler) is not installed here."""


def _stderr(message: str) -> None:
    print(f"gtr: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Where the plugin is built.


def extensions_root() -> Path:
    """torch's folder for extensions built on first use (`TORCH_EXTENSIONS_DIR`, else its default per Python
    and CUDA version)."""
    from torch.utils import cpp_extension

    return Path(cpp_extension._get_build_directory(PLUGIN_PREFIX, False)).parent


def plugin_name() -> str:
    """The name nvdiffrast builds its CUDA plugin under: diffrp-nvdiffrast names one per nvdiffrast and torch
    version, nvdiffrast itself uses one name."""
    import nvdiffrast
    import nvdiffrast.torch.ops as ops
    import torch

    if hasattr(ops, "sanitize_name"):
        return str(ops.sanitize_name(f"{PLUGIN_PREFIX}_{nvdiffrast.__version__}_torch{torch.__version__}"))
    return PLUGIN_PREFIX


def library_file(folder: Path, name: str) -> Path:
    """The built plugin in its folder (what PyTorch's loader imports)."""
    return folder / f"{name}{'.pyd' if sys.platform == 'win32' else '.so'}"


def _loaded() -> Any:
    """The plugin nvdiffrast has loaded in this process, or None."""
    ops = sys.modules.get("nvdiffrast.torch.ops")
    cached = getattr(ops, "_cached_plugin", None)
    return cached.get(False) if isinstance(cached, dict) else cached


# ---------------------------------------------------------------------------------------------------------------
# Processes, locks, stale locks.


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a pid from a later one that reuses it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether process `pid` runs on this machine (and, where `started` is known, is the one that started then)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    now = _start_ticks(pid)
    return started is None or now is None or now == started


def _windows_process_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return bool(kernel32.GetLastError() == 5)  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def processes_working_in(folder: Path) -> list[int]:
    """Processes whose working folder is `folder` or inside it: PyTorch runs ninja there, and ninja the
    compilers (Linux: /proc; elsewhere none are found)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    target = str(folder.resolve())
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == target or cwd.startswith(target + os.sep):
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class BuildLock:
    """PyTorch's `lock` in a plugin's build folder, and whether the build that made it is over."""

    path: Path
    stale: bool
    why: str  # for the user: whose it is and why it is (not) stale
    owner: int | None = None  # the pid our owner record names


def inspect_lock(lock: Path, now: float | None = None) -> BuildLock:
    """Whether `lock` is stale (module docstring)."""
    now = time.time() if now is None else now
    try:
        age = now - lock.stat().st_mtime
    except OSError:
        return BuildLock(lock, False, "it was just removed")
    working = processes_working_in(lock.parent)
    if working:
        return BuildLock(lock, False, f"process {working[0]} is compiling in {lock.parent}")
    record: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((lock.parent / OWNER).read_text())
        record = loaded if isinstance(loaded, dict) else {}
    pid = record.get("pid") if isinstance(record.get("pid"), int) else None
    if pid is not None and record.get("host") == socket.gethostname():
        if pid == os.getpid():
            return BuildLock(lock, True, "left by an earlier build in this process", pid)
        if not process_alive(pid, record.get("started")):
            return BuildLock(lock, True, f"left by an interrupted build (process {pid} no longer runs)", pid)
        if age > OWNED_LIMIT_S:
            return BuildLock(lock, True, f"{age / 60:.0f} minutes old and nothing compiles in its folder", pid)
        return BuildLock(lock, False, f"process {pid} is building it", pid)
    if age > STALE_AFTER_S:
        return BuildLock(lock, True, f"{age / 60:.0f} minutes old and nothing compiles in its folder", pid)
    made = f"by process {pid} on {record.get('host')}" if pid is not None else "by another program"
    return BuildLock(lock, False, f"made {age:.0f} s ago {made}", pid)


def build_locks(root: Path) -> list[BuildLock]:
    """PyTorch's lock files in nvdiffrast's build folders under `root`, inspected."""
    if not root.is_dir():
        return []
    return [
        inspect_lock(folder / "lock") for folder in sorted(root.glob(f"{PLUGIN_PREFIX}*")) if (folder / "lock").exists()
    ]


def clear_stale_locks(root: Path, say: Say = _stderr) -> list[Path]:
    """Remove the stale lock files (and our owner records beside them) under `root`; says one line for each."""
    cleared = []
    for lock in build_locks(root):
        if not lock.stale:
            continue
        with contextlib.suppress(FileNotFoundError):
            lock.path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (lock.path.parent / OWNER).unlink()
        say(f"removed a stale build lock of nvdiffrast's CUDA rasterizer, {lock.why}: {lock.path}")
        cleared.append(lock.path)
    return cleared


@contextlib.contextmanager
def _guard(root: Path, wait: bool) -> Iterator[None]:
    """The operating-system lock that serialises our builds; released by the system if this process dies.
    Raises `BuildBusyError` when another process holds it and `wait` is off."""
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / GUARD, "a+b")  # noqa: SIM115 (held for the whole build)
    try:
        if not _lock_file(handle, wait):
            raise BuildBusyError(
                "the fast GPU rasterizer (nvdiffrast) is being built by another process right now; "
                "it will be used once that build is done"
            )
        yield
    finally:
        handle.close()  # closing the file releases the lock


def _lock_file(handle: Any, wait: bool) -> bool:
    if sys.platform == "win32":
        import msvcrt

        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(1.0)
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# What a build needs.


def missing_tools() -> str | None:
    """Why a build cannot run here (nvcc or ninja missing), in words for the user; None when it can."""
    import shutil

    import torch
    from torch.utils import cpp_extension

    cuda = torch.version.cuda or "?"
    home = cpp_extension.CUDA_HOME
    nvcc = Path(home or "", "bin", "nvcc.exe" if sys.platform == "win32" else "nvcc")
    if not home or not nvcc.is_file():
        return (
            "nvcc, the CUDA compiler, was not found: install the CUDA toolkit "
            f"{cuda} (the CUDA of this PyTorch) and set CUDA_HOME to it"
        )
    if not cpp_extension.is_ninja_available():
        return f"ninja was not found: install it into this Python ({sys.executable} -m pip install ninja)"
    if sys.platform != "win32" and not shutil.which(os.environ.get("CXX", "c++")):
        return "no C++ compiler (c++) was found: install one (e.g. g++) and try again"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Loading, building.


def ensure_plugin(wait: bool = False, say: Say = _stderr, heartbeat: float = HEARTBEAT_S) -> bool:
    """Make nvdiffrast's CUDA plugin loaded in this process: load the finished build, or build it first.
    Returns True when this call built it. Stale locks are removed first; `wait`: wait for a build another
    process is running (else `BuildBusyError`). A build that cannot run or fails raises `BuildError`."""
    if _loaded() is not None:
        return False
    if not _THREADS.acquire(blocking=wait):  # another thread of this process is at it
        raise BuildBusyError(
            "the fast GPU rasterizer (nvdiffrast) is being built right now; it will be used once that build is done"
        )
    try:
        return _ensure_plugin(wait, say, heartbeat)
    finally:
        _THREADS.release()


def _ensure_plugin(wait: bool, say: Say, heartbeat: float) -> bool:
    if _loaded() is not None:
        return False
    root = extensions_root()
    name = plugin_name()
    folder = root / name
    clear_stale_locks(root, say)
    own_name = name != PLUGIN_PREFIX  # a plugin per version: once built, it loads without a compiler
    if own_name and not (folder / "lock").exists() and _import_built(folder, name):
        return False
    with _guard(root, wait):
        if _loaded() is not None:
            return False
        _wait_for_foreign_build(root, folder, wait, say)
        if own_name and _import_built(folder, name):  # another process finished it while we waited
            return False
        built = not own_name and library_file(folder, name).is_file()  # nvdiffrast's loader checks it
        problem = missing_tools()
        if problem:
            raise MissingToolsError(f"the fast GPU rasterizer (nvdiffrast) cannot be built: {problem}")
        _build(root, folder, say, heartbeat, announce=not built)
        return not built


def _wait_for_foreign_build(root: Path, folder: Path, wait: bool, say: Say) -> None:
    """A live lock we do not own (another program building): wait for it, or raise `BuildBusyError`."""
    said = False
    while (folder / "lock").exists():
        lock = inspect_lock(folder / "lock")
        if lock.stale:
            clear_stale_locks(root, say)
            continue
        if not wait:
            raise BuildBusyError(
                f"the fast GPU rasterizer (nvdiffrast) is being built elsewhere ({lock.why}); "
                "it will be used once that build is done"
            )
        if not said:
            say(f"waiting for another build of nvdiffrast's CUDA rasterizer ({lock.why})")
            said = True
        time.sleep(2.0)


def _build(root: Path, folder: Path, say: Say, heartbeat: float, announce: bool = True) -> None:
    """Build (or, for nvdiffrast's own plugin name, check the build of) the plugin under our owner record;
    `announce`: say that it builds, how long that takes, and how it goes."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_ticks(os.getpid())}
    (folder / OWNER).write_text(json.dumps(record))
    if announce:
        say(f"building nvdiffrast's CUDA rasterizer ({EXPECTED})")
    start = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(heartbeat):
            say(f"still building nvdiffrast's CUDA rasterizer ({time.monotonic() - start:.0f} s so far)")

    if announce and heartbeat > 0:
        threading.Thread(target=tick, daemon=True).start()
    try:
        _load_plugin(root)
    except Exception as error:
        log = root / LOG
        with contextlib.suppress(OSError):
            log.write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {error!r}\n\n{error}\n")
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        # The compiler's first "error:" line says most; PyTorch's own first line only names the extension.
        errors = [line for line in lines if "error:" in line.lower() and not line.startswith("Error building")]
        reason = (errors or lines or [repr(error)])[0]
        raise BuildError(
            f"building the fast GPU rasterizer (nvdiffrast) failed ({reason[:160]}); the compiler's output is in {log}"
        ) from None
    finally:
        done.set()
        with contextlib.suppress(FileNotFoundError):
            (folder / OWNER).unlink()
    if announce:
        say(f"built nvdiffrast's CUDA rasterizer in {time.monotonic() - start:.0f} s")


def _import_built(folder: Path, name: str) -> bool:
    """Load a finished build as it is, without a compiler; False when there is none (or it does not load)."""
    from torch.utils import cpp_extension

    if not library_file(folder, name).is_file():
        return False
    try:
        module = cpp_extension._import_module_from_library(name, str(folder), True)
    except (ImportError, OSError):
        return False
    import nvdiffrast.torch.ops as ops

    if isinstance(getattr(ops, "_cached_plugin", None), dict):
        ops._cached_plugin[False] = module
    else:
        ops._cached_plugin = module
    return True


def _load_plugin(root: Path) -> Any:
    """nvdiffrast's own loader (which builds when needed). Newer PyTorch no longer puts the build folder on
    sys.path, so nvdiffrast's import of the plugin by name fails once: the folder is added and it goes on."""
    import nvdiffrast.torch.ops as ops

    try:
        return ops._get_plugin()
    except ModuleNotFoundError as error:
        if not error.name or not error.name.startswith(PLUGIN_PREFIX):
            raise
        sys.path.insert(0, str(root / error.name))
        return ops._get_plugin()
