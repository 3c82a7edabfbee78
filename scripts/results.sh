#!/usr/bin/env bash
# Measure on this machine and rebuild docs/RESULTS.md: bash scripts/results.sh [--quick]
#   gtr eval on the shipped evaluation set (CPU: 256x256 views; CUDA: the protocol's 512x512), also with the
#   geometry fit and the texture from the views turned off one by one and the default's other design choices
#   taken out (scripts/ablations.py) (compare-*.json), with the pipeline before them (compare-*-0-before.json,
#   kept as measured),
#   gtr bench (every stage, views to GLB), gtr bench --model-only, gtr bench --training, the Blender add-on's
#   click-to-mesh timing (scripts/bench_blender.py) and Render Selected on every evaluation object
#   (scripts/bench_render_selected.py) when bpy is installed, then gtr report.
# Files land in docs/results/ as eval-<device>*.json, bench-<device>.json, model-<device>.json; evaluation
# runs are resumable (rerun the script after an interruption). LPIPS_WEIGHTS="alexnet.pth alex.pth" adds LPIPS.
set -euo pipefail
cd "$(dirname "$0")/.."
GTR="${GTR:-.venv/bin/gtr}"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  device=cuda; size=512; presets="gtr-small gtr-paper"
else
  device=cpu; size=256; presets="gtr-small"
fi
lpips=()
if [[ -n "${LPIPS_WEIGHTS:-}" ]]; then read -r -a files <<<"$LPIPS_WEIGHTS"; lpips=(--lpips "${files[@]}"); fi
mkdir -p docs/results results
# The NeRF variant renders 20 views with 128 samples per ray: minutes per asset on a CPU, so it runs apart.
"$GTR" eval examples/evalset -o "results/eval-$device" --device "$device" --size "$size" \
  --variants feed-forward refined visual-hull --label "default: carve + fill + surface fit + clean, texture from views" \
  "${lpips[@]}"
cp "results/eval-$device/results.json" "docs/results/eval-$device.json"
cp "results/eval-$device/results.json" "docs/results/compare-$device-4-default.json"
# The same evaluation with the stages that make the result faithful to the views turned off one by one.
compare() {  # compare NAME LABEL OPTIONS...
  local name=$1 label=$2; shift 2
  "$GTR" eval examples/evalset -o "results/compare-$device-$name" --device "$device" --size "$size" \
    --variants refined --no-sheets --label "$label" "$@" "${lpips[@]}"
  cp "results/compare-$device-$name/results.json" "docs/results/compare-$device-$name.json"
}
compare 1-network "as before: the network's shape, refined colour field" --no-geometry-refine --texture-from-views off
compare 2-carve "carve + fill + clean (no surface fit), texture from views" --geometry-steps 0
compare 3-field "carve + fill + surface fit + clean, refined colour field only" --texture-from-views off
if [[ $device == cpu ]]; then
  for ablation in no-clean no-membrane field-fill no-agreement no-network-carve; do
    .venv/bin/python scripts/ablations.py "$ablation"
  done
fi
"$GTR" eval examples/evalset -o "results/eval-$device-nerf" --device "$device" --size "$size" \
  --variants nerf "${lpips[@]}"
cp "results/eval-$device-nerf/results.json" "docs/results/eval-$device-nerf.json"
# shellcheck disable=SC2086
"$GTR" bench --device "$device" --presets $presets --json "docs/results/bench-$device.json"
# shellcheck disable=SC2086
"$GTR" bench --model-only --device "$device" --presets $presets --repeats 5 --json "docs/results/model-$device.json"
# shellcheck disable=SC2086
"$GTR" bench --training --device "$device" --presets $presets --batch 4 --repeats 3 \
  --json "docs/results/training-$device.json"
if .venv/bin/python -c "import bpy" 2>/dev/null; then
  .venv/bin/python scripts/bench_blender.py --device "$device"
  .venv/bin/python scripts/bench_render_selected.py --device "$device"
fi
"$GTR" report docs/results -o docs/RESULTS.md
