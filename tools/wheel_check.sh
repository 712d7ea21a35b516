#!/usr/bin/env bash
# Build the wheel and install it into a fresh virtual environment that already has torch, as `pip install domain-tuner` would;
# check `import domain_tuner`, `domain-tuner --help`, and that no CUDA packages were pulled onto a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m pip wheel -q --no-deps . -w "$tmp/dist"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_PIP_ARGS:-}
"$tmp/venv/bin/pip" install -q "$tmp"/dist/domain_tuner-*.whl
"$tmp/venv/bin/python" -c "import domain_tuner, sys; print('import ok', domain_tuner.__version__)"
"$tmp/venv/bin/domain-tuner" --help | head -3
if "$tmp/venv/bin/pip" list 2>/dev/null | grep -i '^nvidia-'; then echo "FAIL: CUDA packages were installed"; exit 1; fi
echo "wheel check passed: $(ls "$tmp"/dist)"
