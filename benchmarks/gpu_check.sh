#!/usr/bin/env bash
# The GPU check of the CUDA backend, as one script for a lent GPU machine (issue 6):
#   1. the CUDA tests on the real GPU (CPU vs GPU instance by instance, tests/test_cuda.py);
#   2. benchmarks/bench_cuda.py: the core job on the GPU and on all CPU cores, one run.
# Run from the repository root:  OUT=/some/dir bash benchmarks/gpu_check.sh
# Everything it prints is also written to $OUT (default ./gpu_check_out). It installs
# nothing: the machine needs numba, numba-cuda, numpy, xarray, scipy, scikit-learn, pytest
# and the NIST data at ../shared/data/nist-wine (or $MCMTJ_NIST_WINE); a missing one is
# reported first.
# Sized to fit a 10-minute slot on an H200 with a cold numba cache; set GPU_INSTANCES and
# CPU_INSTANCES to change the benchmark's sizes.
set -u
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM
exec > >(tee "$OUT/gpu_check.log") 2>&1

echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
python - <<'EOF'
import importlib
import numpy as np
if not hasattr(np, "row_stack"):  # numpy >= 2.5; mcmtj.cuda does the same before compiling
    np.row_stack = np.vstack
missing = []
for name in ("numba", "numba.cuda", "numpy", "xarray", "scipy", "pytest", "sklearn"):
    try:
        mod = importlib.import_module(name)
        print(f"{name} {getattr(mod, '__version__', '')}")
    except Exception as err:  # report every missing piece at once
        missing.append(f"{name}: {err}")
import os, pathlib
nist = pathlib.Path(os.environ.get("MCMTJ_NIST_WINE", "../shared/data/nist-wine"))
if not nist.is_dir():
    missing.append(f"NIST data: no folder {nist} (set MCMTJ_NIST_WINE)")
if missing:
    raise SystemExit("missing: " + "; ".join(missing))
from numba import cuda
print("GPU available to numba:", cuda.is_available())
EOF
[ $? -eq 0 ] || exit 2

echo "== real-GPU tests (the simulator tests run in CI; not repeated here)"
timeout 300 python -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    -k "real_gpu or compiles or refused or unsupported" -rs 2>&1 | tail -15
echo "tests exit status: ${PIPESTATUS[0]}"

echo "== benchmark"
timeout 240 python benchmarks/bench_cuda.py --instances "${GPU_INSTANCES:-1e8}" \
    --cpu-instances "${CPU_INSTANCES:-4e5}" 2>&1
echo "benchmark exit status: $?"
