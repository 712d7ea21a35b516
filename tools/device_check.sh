#!/usr/bin/env bash
# On the GPU machine, from the repository root, with `.whl/` carried (built here by `make gpu-carry`):
#   bash tools/device_check.sh            # results in $OUT (the device tool's folder), else /tmp/gpu-check
# installs the carried wheels beside the image's CUDA torch, runs bench/gpu_check.py, then the whole test suite on the
# GPU (`#| gpu` notebook cells and `gpu` tests included). Budget: under 8 minutes on one H200, start-up included.
set -u
OUT=${OUT:-/tmp/gpu-check}; SITE=/tmp/site; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .whl/*.whl || exit 1
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 DOMAIN_TUNER_QUIET=1 PATH=$SITE/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'bitsandbytes', bitsandbytes.__version__)" | tee -a "$OUT/gpu.txt"
SECONDS=0
python3 bench/gpu_check.py --out "$OUT" 2>"$OUT/gpu_check.err"; rc=$?
echo "gpu_check: exit $rc in ${SECONDS}s"
SECONDS=0
# the test suite on the GPU, precision pinned to fp32 as on a CPU (its exact comparisons); bf16 is gpu_check's
DOMAIN_TUNER_PRECISION=fp32 nbdev-test --n-workers 8 --flags gpu > "$OUT/nbdev_test.log" 2>&1; nb=$?
tail -5 "$OUT/nbdev_test.log"
xdist=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")
DOMAIN_TUNER_PRECISION=fp32 python3 -m pytest tests/ -q -p no:cacheprovider -m "not slow" $xdist > "$OUT/pytest.log" 2>&1; pt=$?
tail -3 "$OUT/pytest.log"
echo "tests on the GPU: nbdev-test exit $nb, pytest exit $pt, ${SECONDS}s"
exit $(( rc || nb || pt ))
