#!/usr/bin/env bash
# bench/gpu.py on a lent GPU machine, whose image has torch but not diffusers or lpips and
# reaches no package index. From the repository root:
#
#   bash bench/gpu_device.sh wheels   # here: the wheels it lacks into .whl/ (git ignores it)
#   bash bench/gpu_device.sh run      # there, with .whl carried: installs them, then measures
#
# `run` writes gpu.md, gpu.json and gpu.log into $OUT (bench/out/gpu where OUT is unset).
set -euo pipefail

# What the machine's image lacks or holds at an older version (its Python is 3.12).
WHEELS=(diffusers==0.42.1 lpips==0.1.4 safetensors==0.8.0 importlib_metadata==10.2.0)

fetch_wheels() {
    mkdir -p .whl
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
    ls -l .whl
}

measure() {
    local out="${OUT:-bench/out/gpu}"
    mkdir -p "$out"
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH="$PWD/core:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 bench/gpu.py --out "$out" 2>&1 | tee "$out/gpu.log"
}

case "${1:-}" in
    wheels) fetch_wheels ;;
    run) measure ;;
    *) echo "usage: bash bench/gpu_device.sh wheels|run" >&2; exit 2 ;;
esac
