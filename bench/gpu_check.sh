#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (a lent device machine), in one call of
# well under 5 minutes:
#
#   bash bench/gpu_check.sh --prepare   # here, with PyPI: the pure-Python test
#                                       # dependencies from the lock into build/gpu-check
#   bash bench/gpu_check.sh             # there (carry build/gpu-check): prints
#                                       # nvidia-smi, torchup detect, and the gpu tests
#
# It runs tests/test_gpu.py with TORCHUP_GPU_TESTS=1 (see that file for what is
# compared with what). Without nvidia-smi it says so and the gpu tests skip with their
# reason: the script passes on a machine without a GPU. PYTHON picks the interpreter
# (default: the test venv's, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
deps=build/gpu-check/site

if [[ "${1:-}" == "--prepare" ]]; then
    # the pins and hashes of what the check imports, taken from the test lock
    rm -rf "$deps" && mkdir -p "$deps"
    python3 - requirements/test.txt >build/gpu-check/requirements.txt <<'EOF'
import re, sys
wanted = {"pytest", "pluggy", "iniconfig", "packaging", "httpx", "httpcore", "h11",
          "anyio", "idna", "certifi", "sniffio", "platformdirs", "typing-extensions",
          "exceptiongroup", "tomli", "pygments", "hypothesis", "sortedcontainers",
          "attrs"}
block = []
for line in open(sys.argv[1]).read().splitlines() + [""]:
    if line and not line.startswith((" ", "#")):
        block = [line]
    elif line.startswith(" ") and block:
        block.append(line)
    if block and not line.rstrip().endswith("\\"):
        name = re.match(r"[A-Za-z0-9._-]+", block[0]).group(0).lower()
        if name in wanted:
            print("\n".join(block))
        block = []
EOF
    python3 -m pip install -q --no-deps --require-hashes --target "$deps" \
        -r build/gpu-check/requirements.txt
    echo "prepared $deps ($(du -sh "$deps" | cut -f1)); carry build/gpu-check"
    exit 0
fi

py="${PYTHON:-}"
if [[ -z "$py" ]]; then
    if [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import pytest' 2>/dev/null; then
        py=.venv/bin/python
    else
        py=python3
    fi
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
[[ -d "$deps" ]] && export PYTHONPATH="$PYTHONPATH:$deps"
if ! "$py" -c 'import pytest, httpx, packaging, platformdirs' 2>/dev/null; then
    echo "gpu_check: $py lacks pytest, httpx, packaging or platformdirs:" \
        "run 'bash bench/gpu_check.sh --prepare' where PyPI is reachable and carry build/gpu-check" >&2
    exit 1
fi

echo "== $("$py" --version 2>&1) at $(command -v "$py"), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if command -v nvidia-smi >/dev/null; then
    echo "== nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv"
    nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv
    echo "== torchup detect"
    "$py" -m torchup detect || true
else
    echo "== no nvidia-smi on PATH: the gpu tests skip with that reason"
fi
echo "== TORCHUP_GPU_TESTS=1 pytest -m gpu tests/test_gpu.py"
TORCHUP_GPU_TESTS=1 timeout 280 "$py" -m pytest -m gpu tests/test_gpu.py \
    -v -rs -s -p no:cacheprovider -o addopts="--strict-markers"
