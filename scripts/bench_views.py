"""How the reconstruction's time grows with the number of views:

    .venv/bin/python scripts/bench_views.py [--asset examples/evalset/mug.glb] [--counts 4 16 32 100]

Renders the asset from N cameras on two rings around it (20 and -10 degrees elevation, 256 px, the evaluation
protocol's lens and distance), then times `reconstruct` with the default options on the CPU, the model loaded
once beforehand and one warm-up run (so the time is views in, textured mesh out). Prints one JSON line per
count: the views given, the views the fit used (the rest are dropped with a note above
`contract.MAX_FIT_VIEWS`), seconds per stage and in all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asset", type=Path, default=ROOT / "examples" / "evalset" / "mug.glb")
    parser.add_argument("--counts", type=int, nargs="+", default=[4, 16, 32, 100])
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from gtr_backend.reconstruction import reconstruct
    from gtr_backend.render.raster import get_rasterizer
    from gtr_backend.weights import find_default_weights, load_model
    from gtr_lab.evaluation.protocol import EvalProtocol
    from gtr_lab.evaluation.runner import find_assets

    torch.manual_seed(0)
    device = torch.device("cpu")
    (asset,) = find_assets(args.asset, get_rasterizer(device))
    model = load_model(find_default_weights(), device)
    for count in args.counts:
        upper = (count + 1) // 2  # two interleaved rings
        azimuths = [360.0 * i / upper for i in range(upper)] + [
            360.0 * (i + 0.5) / (count - upper) for i in range(count - upper)
        ]
        elevations = [20.0] * upper + [-10.0] * (count - upper)
        protocol = EvalProtocol(size=args.size)
        assert asset.render is not None
        views = asset.render(*protocol.cameras(azimuths, elevations), args.size).to(device)
        if count == args.counts[0]:
            reconstruct(views, model, device)  # warm-up: the first call pays for lazy imports and allocations
        start = time.perf_counter()
        result = reconstruct(views, model, device)
        seconds = time.perf_counter() - start
        used = len(result.fidelity.mask_iou_per_view) if result.fidelity is not None else None
        record = {"views": count, "fit_views": used, "seconds": round(seconds, 2), "notes": result.notes}
        record["stages"] = {k: round(v, 2) for k, v in result.timings.items()}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
