"""gtr_backend.files: writes all or nothing, and a write the file system refuses said in one line."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from gtr_backend.errors import WriteError
from gtr_backend.files import atomic_write, replace_folder, staged_folder


def refused(code: int):
    """A writer that lands some bytes and is then refused by the file system with `code`."""

    def write(path: Path) -> None:
        path.write_bytes(b"half a file")
        raise OSError(code, os.strerror(code))

    return write


@pytest.mark.parametrize(("code", "cause"), [(errno.ENOSPC, "No space left on device"), (errno.EFBIG, "too large")])
def test_a_refused_write_keeps_the_old_file_and_says_so_in_one_line(tmp_path, code, cause):
    path = tmp_path / "texture.png"
    path.write_bytes(b"the old texture")
    with pytest.raises(WriteError) as failed:
        atomic_write(path, refused(code))
    assert path.read_bytes() == b"the old texture"
    assert [p.name for p in tmp_path.iterdir()] == ["texture.png"]  # no temporary file left behind
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"cannot write {path}: ") and cause in message
    assert message.endswith("the old one is kept")


def test_a_refused_new_file_says_nothing_was_written(tmp_path):
    with pytest.raises(WriteError, match=r"No space left on device; free some space .*; nothing was written$"):
        atomic_write(tmp_path / "new.json", refused(errno.ENOSPC))
    assert not list(tmp_path.iterdir())


def test_other_errors_of_a_writer_are_not_taken_for_the_file_systems(tmp_path):
    def reads_a_missing_file(path: Path) -> None:
        (tmp_path / "missing").read_bytes()

    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "out.txt", reads_a_missing_file)
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "out.txt", lambda path: 1 / 0)
    assert not list(tmp_path.iterdir())


def test_a_staged_folder_appears_whole_or_not_at_all(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "old.txt").write_text("old")
    with staged_folder(job) as staging:
        (staging / "new.txt").write_text("new")
        assert job.is_dir() and not (job / "new.txt").exists()  # the old folder stands until the block ends
    assert [p.name for p in job.iterdir()] == ["new.txt"]
    said = r"^cannot write .*job: No space left on device; .*the old one is kept$"
    with pytest.raises(WriteError, match=said), staged_folder(job) as staging:
        (staging / "newer.txt").write_text("newer")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert [p.name for p in job.iterdir()] == ["new.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["job"]


def test_replace_folder_puts_the_old_one_back_when_the_swap_fails(tmp_path, monkeypatch):
    old, new = tmp_path / "views", tmp_path / ".views-new"
    old.mkdir()
    new.mkdir()
    (old / "a.png").write_bytes(b"a")
    real = os.replace

    def failing(source, target):
        if Path(source) == new:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(source, target)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        replace_folder(new, old)
    assert (old / "a.png").read_bytes() == b"a"


def test_the_command_line_says_a_full_disk_in_one_line(tmp_path, fitted_sphere, monkeypatch, capsys):
    """`gtr reconstruct` whose mesh cannot be written for lack of room: one line naming the file and the cause,
    exit status 2, the old file as it was."""
    import gtr_backend.files as files
    import gtr_backend.reconstruction as reconstruction
    from gtr_backend.cli import main
    from gtr_backend.model import GTR, preset
    from gtr_backend.views import save_views
    from gtr_backend.weights import save_weights

    field, triplane, views = fitted_sphere
    save_views(views, tmp_path / "views")
    model = GTR(preset("gtr-tiny", triplane_channels=16, plane_tokens=16, mlp_width=32))
    model.field.load_state_dict(field.state_dict())
    save_weights(model, tmp_path / "model.safetensors")
    monkeypatch.setattr(reconstruction, "predict_triplane", lambda *a: triplane)
    real = os.replace

    def full(source, target):
        if ".part" in str(source):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(source, target)

    monkeypatch.setattr(files.os, "replace", full)
    out = tmp_path / "out.glb"
    out.write_bytes(b"the old mesh")
    args = ["reconstruct", str(tmp_path / "views"), "-o", str(out), "--weights", str(tmp_path / "model.safetensors")]
    args += ["--mesh-resolution", "32", "--texture-size", "64", "--refine-steps", "0", "--device", "cpu"]
    capsys.readouterr()
    assert main(args) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == (
        f"gtr: error: cannot write {out}: No space left on device; free some space or write somewhere else; "
        "the old one is kept"
    )
    assert out.read_bytes() == b"the old mesh"


def test_staging_folders_of_killed_runs_are_removed_at_the_next_start(tmp_path):
    """A backend killed while writing a job leaves its hidden staging folder; the next session removes those
    whose process is gone, and nothing else (a live process's, a user's own hidden folder)."""
    import os

    from gtr_backend.files import STAGING
    from gtr_backend.server.session import Session

    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    stale = [tmp_path / f".job{STAGING}{dead}-abc", tmp_path / "job" / f".sub{STAGING}{dead}-old-1f"]
    alive = tmp_path / f".job{STAGING}{os.getpid()}-def"
    mine = tmp_path / ".my-notes"
    for folder in (*stale, alive, mine):
        folder.mkdir(parents=True)
        (folder / "partial.bin").write_bytes(b"x")
    Session(jobs_root=tmp_path)
    assert not any(folder.exists() for folder in stale) and alive.exists() and mine.exists()
