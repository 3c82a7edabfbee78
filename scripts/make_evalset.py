"""Regenerate the shipped evaluation set `examples/evalset/` (ten textured GLBs, CC0): python scripts/make_evalset.py"""

from __future__ import annotations

import argparse
from pathlib import Path

from gtr_lab.synthetic.evalset import write_evaluation_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent.parent / "examples" / "evalset")
    parser.add_argument("--texture-size", type=int, default=1024)
    args = parser.parse_args()
    for path in write_evaluation_set(args.output, args.texture_size):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
