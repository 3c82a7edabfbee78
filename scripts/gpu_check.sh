#!/usr/bin/env bash
# The GPU check, sized for one GPU job with a wall-time limit (a cluster queue's job, a cloud or preemptible
# machine) of GTR_CHECK_MINUTES (10 by default), nvdiffrast's build included. It needs python3 with a CUDA build of torch. Without a package index it installs
# the wheels carried in .whl/ (trimesh, xatlas, fast-simplification, diffrp-nvdiffrast, ninja, pytest, ...: what
# this Python lacks) and builds diso from its sdist there, when they are present; with no .whl/ it uses what is
# installed.
#
# Usage: [PYTHON=python3] bash scripts/gpu_check.sh [--results DIR] [STEP ...]
#   Everything it makes goes into one folder: DIR, else $GTR_RESULTS, else bench-results/. summary.txt says what
#   ran, how long it took and what was skipped; environment.txt the GPU, driver and versions; then each step's log
#   and files (bench-cuda.json, eval-cuda/, eval-cpu/, ...). The JSON files are the ones docs/results/ takes.
#   Steps (default: rasterizer cuda-tests bench eval):
#     rasterizer   gtr build-rasterizer: nvdiffrast's CUDA plugin, built first and with no time limit around it
#                  (a build killed half-way is what leaves a lock behind)
#     cuda-tests   the tests that touch CUDA: those marked cuda, the rasterizer's, the backend server's
#     bench        gtr bench on CUDA with gtr-small: every stage from views to GLB, and the backend server's
#                  requests cold and warm, with and without nvdiffrast/diso -> bench-cuda.json
#     eval         gtr eval of examples/evalset on CUDA, at its default grid and at the CPU's (compare with
#                  docs/results/eval-cpu.json, measured on a CPU with the same protocol)
#     suite        the whole test suite (a job of its own: longer than the rest together)
#     bench-model  gtr bench --model-only (the network alone, gtr-small and gtr-paper) -> model-cuda.json
#     bench-training  gtr bench --training -> training-cuda.json
#     train MINUTES [INIT]   stage-1 training of gtr-small for MINUTES, into the results folder
#     train2 MINUTES INIT    stage-2 training from stage-1 weights INIT
#     probe FOLDER MINUTES PRESET...   gtr campaign FOLDER --probe: measure the presets, start with the best
#     campaign FOLDER MINUTES          one chunk of the campaign in FOLDER, in what is left of MINUTES of the job
#   probe and campaign copy the campaign's progress, log and new shards into the results folder, for jobs whose
#   files come back only from there: copy them back into FOLDER, then run `gtr campaign FOLDER --status` (it
#   deletes the shards of earlier chunks and writes the weights when the campaign is done).
#   A default step that would not fit in what is left of GTR_CHECK_MINUTES (10) is skipped and said so. The exit
#   status is 1 when a step failed (summary.txt names it), else 0.
set -uo pipefail
cd "$(dirname "$0")/.."

results=${GTR_RESULTS:-bench-results}
if [ "${1:-}" = "--results" ]; then results=$2; shift 2; fi
mkdir -p "$results"
results=$(cd "$results" && pwd)
budget=$(( ${GTR_CHECK_MINUTES:-10} * 60 ))
summary="$results/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
gtr() { "$py" -m gtr_backend.cli "$@"; }
failed=0

# Wheels carried in .whl/, for a machine without a package index (none: what is installed is used).
shopt -s nullglob
wheels=(.whl/*.whl)
shopt -u nullglob
if [ ${#wheels[@]} -gt 0 ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gtr-site "${wheels[@]}" \
    > "$results/wheels.log" 2>&1 || say "installing the wheels in .whl/ failed (see wheels.log)"
  export PYTHONPATH=/tmp/gtr-site:$PWD${PYTHONPATH:+:$PYTHONPATH}
  export PATH=/tmp/gtr-site/bin:$PATH  # ninja's wheel puts its program here
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
sdists=(.whl/diso-*.tar.gz)
if [ -f "${sdists[0]}" ] && ! "$py" -c "import diso" 2>/dev/null; then
  start=$SECONDS
  arch=$("$py" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())" 2>/dev/null)
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch} "$py" -m pip install -q --no-index --no-deps \
    --no-build-isolation --target /tmp/gtr-site "${sdists[0]}" > "$results/diso-build.log" 2>&1 \
    && say "diso: built in $((SECONDS - start)) s" || say "diso: build failed (see diso-build.log)"
fi

{
  date -u "+%Y-%m-%d %H:%M UTC"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    || echo "nvidia-smi: not found"
  "$py" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name())"
  for module in nvdiffrast diso meshoptimizer pytest xdist; do
    "$py" -c "import $module" 2>/dev/null && echo "$module: installed" || echo "$module: not installed"
  done
  command -v nvcc > /dev/null && nvcc --version | tail -1 || echo "nvcc: not found"
  command -v ninja > /dev/null && echo "ninja $(ninja --version)" || echo "ninja: not found"
} > "$results/environment.txt" 2>&1
cat "$results/environment.txt"

fits() {  # fits MINUTES NAME: whether a default step of about MINUTES fits in what is left of the budget
  if [ $((SECONDS + $1 * 60)) -gt "$budget" ]; then
    say "$2: skipped, about $1 min and $(( (budget - SECONDS) / 60 )) min are left"
    return 1
  fi
}
timed() {  # timed NAME COMMAND...: run it, log its output to NAME.log, say how it went
  local name=$1 start=$SECONDS
  shift
  "$@" > "$results/$name.log" 2>&1
  local code=$?
  tail -15 "$results/$name.log"
  say "$name: exit $code after $((SECONDS - start)) s"
  [ $code -eq 0 ] || failed=1
  return $code
}
have_pytest() {
  "$py" -c "import pytest" 2>/dev/null && return 0
  say "$1: skipped, pytest is not installed (carry its wheel in .whl/)"
  return 1
}

[ $# -gt 0 ] || set -- rasterizer cuda-tests bench eval
while [ $# -gt 0 ]; do
  case "$1" in
    rasterizer)
      timed build-rasterizer gtr build-rasterizer; shift ;;
    cuda-tests)
      if fits 3 cuda-tests && have_pytest cuda-tests; then
        timed pytest-cuda "$py" -m pytest -q -ra -p no:cacheprovider -m cuda tests
        timed pytest-cuda-paths "$py" -m pytest -q -ra -p no:cacheprovider tests/render \
          tests/test_server_warm_up.py tests/test_server.py
      fi
      shift ;;
    bench)
      fits 3 bench && timed bench gtr bench --device cuda --presets gtr-small --mesh-resolution 256 \
        --json "$results/bench-cuda.json"
      shift ;;
    eval)
      # The evaluation set as the CPU's eval-cpu.json measures it (256-pixel views, 20 evaluation views), on
      # CUDA at its own default grid (256) and at the CPU's (128): the GPU must not lose to the CPU.
      same=(--variants refined --size 256 --no-sheets --quiet)
      fits 3 eval-cuda && timed eval-cuda gtr eval examples/evalset -o "$results/eval-cuda" --device cuda \
        "${same[@]}" --label "cuda, default grid (256)"
      fits 3 eval-cuda-128 && timed eval-cuda-128 gtr eval examples/evalset -o "$results/eval-cuda-128" \
        --device cuda --mesh-resolution 128 "${same[@]}" --label "cuda, grid 128 (the CPU's)"
      shift ;;
    suite)
      if have_pytest suite; then
        workers=()
        "$py" -c "import xdist" 2>/dev/null && workers=(-n 8)
        timed pytest-suite "$py" -m pytest -q -ra -p no:cacheprovider "${workers[@]}" tests
      fi
      shift ;;
    bench-model)
      timed bench-model gtr bench --model-only --device cuda --presets gtr-small gtr-paper --repeats 5 \
        --json "$results/model-cuda.json"
      shift ;;
    bench-training)
      timed bench-training gtr bench --training --device cuda --presets gtr-small gtr-paper --batch 8 \
        --json "$results/training-cuda.json"
      shift ;;
    train)  # stage 1 (NeRF) on procedural objects rendered on the GPU, 64-pixel patches with the SSIM term
      init=()
      [ -n "${3:-}" ] && [ -f "${3:-}" ] && init=(--init "$3")
      timed train gtr train -o "$results/stage1.safetensors" --preset gtr-small --objects 4096 --batch 16 \
        --patch 64 --rays 16384 --max-minutes "$2" --steps 20000 --log-every 200 --run-dir "$results/run1" \
        --checkpoint-every 1000 --validate-every 1000 "${init[@]}"
      shift 2; [ ${#init[@]} -gt 0 ] && shift ;;
    train2)  # stage 2 (mesh) from stage-1 weights
      timed train2 gtr train --stage 2 --init "$3" -o "$results/stage2.safetensors" --objects 2048 --batch 8 \
        --grid 128 --max-minutes "$2" --steps 5000 --log-every 100 --run-dir "$results/run2" \
        --checkpoint-every 500 --validate-every 500
      shift 3 ;;
    probe)  # the presets' learning speed; starts the campaign in FOLDER with the best one
      folder=$2; minutes=$3; shift 3; presets=()
      while [ $# -gt 0 ] && [[ "$1" == gtr-* ]]; do presets+=("$1"); shift; done
      timed probe gtr campaign "$folder" --probe "${presets[@]}" --probe-minutes "$minutes" --device cuda
      cp "$folder"/*.json "$results"/ 2>/dev/null ;;
    campaign)  # one chunk in what is left of MINUTES of the job (the set-up above counted)
      left=$("$py" -c "print(max(1.0, $3 - $SECONDS / 60 - 0.5))")
      timed campaign gtr campaign "$2" --minutes "$left" --device cuda
      cp "$2"/campaign.json "$2"/log.jsonl "$results"/
      "$py" -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['shards']))" "$2/campaign.json" |
        while read -r shard; do cp "$2/$shard" "$results"/; done
      shift 3 ;;
    *) say "unknown step $1"; exit 2 ;;
  esac
done
say "done after $SECONDS s; results in $results"
exit $failed
