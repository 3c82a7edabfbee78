"""Render every picture README.md shows, from the current code and bundled weights, into docs/images:

    .venv/bin/python scripts/readme_pictures.py            # full quality (minutes on a CPU)
    .venv/bin/python scripts/readme_pictures.py --small    # the tests' quick settings, into a scratch folder
    .venv/bin/python scripts/readme_pictures.py workflow.png   # one picture

Each picture comes from a scene script the Blender tests also run (at their small settings, checking what the
picture shows), in a fresh headless Blender with the add-on installed from a freshly built extension and its
user folders in a temporary folder:
- render-selected-to-3d.png: a test object and what "Render Selected to 3D" makes of it with the add-on's
  default capture (tests/blender/scripts/end_to_end.py);
- workflow.png: a cube with a colour per face, its reconstruction, and a copy of the cube with the
  reconstruction baked onto its own UVs by "Bake to Active" (tests/blender/scripts/workflow.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "blender" / "scripts"
PICTURES = {  # picture -> (scene script, its arguments after the extension zip; {scratch} and {picture} filled in)
    "render-selected-to-3d.png": ("end_to_end.py", [str(ROOT / "examples" / "toy"), "{picture}"]),
    "workflow.png": ("workflow.py", ["{scratch}", "{picture}"]),
}


def render(name: str, zip_path: Path, output: Path, small: bool, python: str = sys.executable) -> dict[str, object]:
    """Run the scene script that renders `name` into `output`; returns what the script measured."""
    script, arguments = PICTURES[name]
    work = Path(tempfile.mkdtemp(prefix="gtr-picture-"))
    picture = output / name
    (work / "scratch").mkdir()
    filled = [a.format(scratch=work / "scratch", picture=picture) for a in arguments]
    env = dict(os.environ, PYTHONPATH=str(ROOT), GTR_TEST_BACKEND_PYTHON=sys.executable, TMPDIR=str(work))
    for key, sub in (("RESOURCES", ""), ("CONFIG", "config"), ("SCRIPTS", "scripts"), ("EXTENSIONS", "extensions")):
        env[f"BLENDER_USER_{key}"] = str(work / "home" / sub)
    command = [python, str(SCRIPTS / script), str(zip_path), *filled, *([] if small else ["full"])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    shutil.rmtree(work, ignore_errors=True)
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="the tests' quick settings (a scratch folder)")
    parser.add_argument("--output", type=Path, help="where the pictures go (default: docs/images)")
    parser.add_argument("names", nargs="*", help=f"only these of {', '.join(PICTURES)}")
    args = parser.parse_args()
    if unknown := sorted(set(args.names) - set(PICTURES)):
        parser.error(f"no README picture named {', '.join(unknown)}; the pictures are {', '.join(PICTURES)}")
    output = args.output or (Path(tempfile.mkdtemp(prefix="gtr-pictures-")) if args.small else ROOT / "docs" / "images")
    output.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import build

    zip_path = build.build(Path(tempfile.mkdtemp(prefix="gtr-dist-")))
    for name in args.names or PICTURES:
        measured = render(name, zip_path, output, args.small)
        if name == "render-selected-to-3d.png":  # what the README's caption says about the picture
            (output / "render-selected-to-3d.json").write_text(json.dumps(measured, indent=1) + "\n")
        print(f"wrote {output / name}")


if __name__ == "__main__":
    main()
