#!/usr/bin/env bash
# For a CUDA machine that has python3 with torch but no package index (the device machines): installs the
# wheels carried in .whl/ (trimesh, xatlas, fast-simplification, diffrp-nvdiffrast) and builds diso from its
# sdist there, then runs the whole test suite (CUDA tests included) and the CUDA benchmarks.
# Results go to $OUT (or bench-results/); the JSON files are the ones docs/results/ takes (gtr report).
# Usage: bash scripts/gpu_check.sh [tests] [bench] [eval] [train MINUTES [INIT]] [train2 MINUTES INIT]
#        [probe FOLDER MINUTES PRESET...] [campaign FOLDER MINUTES]
# probe / campaign: `gtr campaign` (README, "A campaign on a lent GPU"); the folder's new files are copied to
# $OUT: copy them back into FOLDER here, then run `gtr campaign FOLDER --status` (it deletes the shards of
# earlier chunks, so the folder stays small enough to travel, and writes the weights when the campaign is done).
set -uo pipefail
out=${OUT:-bench-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
if [ -f .whl/diso-0.1.4.tar.gz ] && ! python3 -c "import diso" 2>/dev/null; then
  start=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/diso-0.1.4.tar.gz \
    > "$out/diso-build.log" 2>&1 || echo "diso build failed (see diso-build.log)"
  echo "diso build: $(( $(date +%s) - start )) s"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
while [ $# -gt 0 ]; do
  case "$1" in
    tests) python3 -m pytest tests -q -ra 2>&1 | tee "$out/pytest.log" | tail -12; shift ;;
    bench)
      gtr() { python3 -m gtr_backend.cli "$@"; }
      gtr bench --device cuda --presets gtr-small gtr-paper --json "$out/bench-cuda.json" 2>&1 | tail -30
      gtr bench --model-only --device cuda --presets gtr-small gtr-paper --repeats 5 --json "$out/model-cuda.json" \
        2>&1 | tail -8
      gtr bench --training --device cuda --presets gtr-small gtr-paper --batch 8 --json "$out/training-cuda.json" \
        2>&1 | tail -6
      shift ;;
    eval)
      python3 -m gtr_backend.cli eval examples/evalset -o "$out/eval-cuda" --device cuda --quiet 2>&1 | tail -12
      shift ;;
    train)  # stage 1 (NeRF) on procedural objects rendered on the GPU, 128-pixel patches with the SSIM term
      init=()
      [ -n "${3:-}" ] && [ -f "${3:-}" ] && init=(--init "$3")
      python3 -m gtr_backend.cli train -o "$out/stage1.safetensors" --preset gtr-small --objects 4096 \
        --batch 16 --patch 64 --rays 16384 --max-minutes "$2" --steps 20000 --log-every 200 \
        --run-dir "$out/run1" --checkpoint-every 1000 --validate-every 1000 "${init[@]}" 2>&1 | tee "$out/train.log" | tail -25
      shift 2; [ ${#init[@]} -gt 0 ] && shift ;;
    train2)  # stage 2 (mesh) from stage-1 weights
      python3 -m gtr_backend.cli train --stage 2 --init "$3" -o "$out/stage2.safetensors" --objects 2048 \
        --batch 8 --grid 128 --max-minutes "$2" --steps 5000 --log-every 100 --run-dir "$out/run2" \
        --checkpoint-every 500 --validate-every 500 2>&1 | tee "$out/train2.log" | tail -25
      shift 3 ;;
    probe)  # the presets' learning speed; starts the campaign in FOLDER with the best one
      folder=$2; minutes=$3; shift 3; presets=()
      while [ $# -gt 0 ] && [[ "$1" == gtr-* ]]; do presets+=("$1"); shift; done
      python3 -m gtr_backend.cli campaign "$folder" --probe "${presets[@]}" --probe-minutes "$minutes" \
        --device cuda 2>&1 | tee "$out/probe.log" | tail -8
      cp "$folder"/*.json "$out"/ 2>/dev/null ;;
    campaign)  # one chunk of the campaign in FOLDER: MINUTES of wall time for the whole call, set-up included
      left=$(python3 -c "print(max(1.0, $3 - $SECONDS / 60 - 0.5))")  # what the install and build left
      python3 -m gtr_backend.cli campaign "$2" --minutes "$left" --device cuda 2>&1 | tee "$out/campaign.log" | tail -8
      # At most 8 files of 16 MiB come back: the progress, the log and the model's shards (the shipped weights
      # are made from the shards here: gtr campaign FOLDER --status).
      cp "$2"/campaign.json "$2"/log.jsonl "$out"/
      python3 -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['shards']))" "$2/campaign.json" |
        while read -r shard; do cp "$2/$shard" "$out"/; done
      shift 3 ;;
    *) echo "unknown step $1"; exit 2 ;;
  esac
done
