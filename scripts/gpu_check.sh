#!/usr/bin/env bash
# For a CUDA machine that has python3 with torch but no package index (the device machines): installs the
# wheels carried in .whl/ (trimesh, xatlas, fast-simplification, diffrp-nvdiffrast) and builds diso from its
# sdist there, then runs the whole test suite (CUDA tests included) and the CUDA benchmarks.
# Results go to $OUT (or bench-results/). Usage: bash scripts/gpu_check.sh [tests] [bench] [train MINUTES [INIT]]
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
      python3 -m gtr_backend.cli bench --pipeline --presets gtr-paper gtr-small --repeats 3 \
        --json "$out/pipeline_cuda.json" --markdown "$out/pipeline_cuda.md" 2>&1 | tail -40; shift ;;
    train)
      init=()
      [ -n "${3:-}" ] && [ -f "${3:-}" ] && init=(--init "$3")
      python3 -m gtr_backend.cli train -o "$out/gtr-small-starter.safetensors" --preset gtr-small --objects 2048 \
        --batch 16 --max-minutes "$2" --steps 20000 --log-every 200 "${init[@]}" 2>&1 | tee "$out/train.log" | tail -25
      shift 2; [ ${#init[@]} -gt 0 ] && shift ;;
    *) echo "unknown step $1"; exit 2 ;;
  esac
done
