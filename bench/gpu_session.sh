#!/usr/bin/env bash
# One batched session on a GPU machine with no network (the device tool): carried wheels in .whl/, outputs in $OUT.
# Runs: detect + plan on the real GPU, verify cold and warm, the SDPA benchmark, the gpu-marked tests, and verify
# again with the PyPI xformers 0.0.35 wheel (a CUDA 12.8 build) beside the machine's torch.
set -u
OUT=${OUT:-/tmp/gpustack-out}; mkdir -p "$OUT"
PY=${PY:-python3}
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    $(ls .whl/*.whl | grep -v xformers) > "$OUT/pip.txt" 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
t() { local name=$1; shift; local s=$(date +%s%N); "$@" > "$OUT/$name" 2>&1; local rc=$?
      echo "$name rc=$rc $(( ($(date +%s%N) - s) / 1000000 )) ms" | tee -a "$OUT/times.txt"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader > "$OUT/nvidia-smi.txt"
t detect.json $PY -m resolver detect --json
t plan_here.json $PY -m resolver plan --json xformers flash-attn
t verify_cold.json $PY -m resolver verify --json
t verify_warm.json $PY -m resolver verify --json
t bench_verify.txt $PY bench/verify_sdpa.py
t pytest_gpu.txt $PY -m pytest -q -p no:cacheprovider tests/gpu -m gpu -rs
$PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/xf .whl/xformers-*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/xf:$PYTHONPATH t verify_xformers.json $PY -m resolver verify --json
PYTHONPATH=/tmp/xf:$PYTHONPATH t verify_xformers_table.txt $PY -m resolver verify
cat "$OUT/times.txt"
