"""docs/command-line.md's "Python API" example, run as written on the bundled views (examples/toy), with the bundled
weights on the CPU in place of the released weights on CUDA."""

from __future__ import annotations

import re
from pathlib import Path

import trimesh

ROOT = Path(__file__).resolve().parent.parent


def readme_python_example() -> str:
    text = (ROOT / "docs" / "command-line.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "docs/command-line.md: the section 'Python API' has no python code block"
    return match.group(1)


def test_the_readme_python_example_runs_on_the_bundled_views(tmp_path, monkeypatch, capsys):
    from gtr_backend.weights import BUNDLED_WEIGHTS

    code = readme_python_example()
    for old, new in (
        ('"my_views/"', repr(str(ROOT / "examples" / "toy"))),
        ('"gtr-paper.safetensors"', repr(str(BUNDLED_WEIGHTS))),
        ('"cuda"', '"cpu"'),
    ):
        assert old in code, f"docs/command-line.md's Python example no longer says {old}; update this test"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)  # result.save("out.glb") writes here
    names: dict[str, object] = {}
    exec(compile(code, "docs/command-line.md (Python API)", "exec"), names)

    views, result, triplane = names["views"], names["result"], names["triplane"]
    assert views.num_views == 4  # type: ignore[attr-defined]
    assert triplane.dim() == 4 and triplane.shape[0] == 3  # type: ignore[attr-defined]
    assert result.fidelity.mask_iou > 0.9 and result.mesh.num_faces > 1000  # type: ignore[attr-defined]
    assert {"triplane", "refine", "bake"} <= set(result.timings)  # type: ignore[attr-defined]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("triplane ") and printed[-1] == "done 1.0"  # the progress callback's lines
    glb = trimesh.load(tmp_path / "out.glb", force="mesh")
    assert len(glb.faces) == result.mesh.num_faces  # type: ignore[attr-defined]
