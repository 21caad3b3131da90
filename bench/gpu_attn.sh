#!/usr/bin/env bash
# Issue 13 on a GPU machine with no network: install SageAttention 1.0.6 and flash-attn-4 (with its CuTe-DSL
# dependencies) from carried wheels into a venv over the machine's torch, then verify them and run tests/gpu.
#
#   bash bench/gpu_attn.sh DIR...      (run from the repo root; DIRs hold the carried files, parts included)
#
# Carried files: wheels, wheels split in parts (NAME.whl.part-aa, NAME.whl.part-ab, ... joined here in order) and
# SHA256SUMS (every joined wheel is checked against it). Parts may arrive over several calls: each call copies its
# folder into /tmp/i13 (see the report of i13-attn), and the last one runs this script on /tmp/i13.
# Base interpreter: $BASE_PY (default /opt/torch/.venv/bin/python3, torch 2.11.0+cu130). Results go to $OUT
# (at most 8 files come back): times.txt, install.txt, plan.json, verify_cold.json, verify_warm.json, verify.txt,
# pytest_gpu.txt.
set -u
OUT=${OUT:-/tmp/gpu-attn-out}; mkdir -p "$OUT"
BASE_PY=${BASE_PY:-/opt/torch/.venv/bin/python3}
REPO=$PWD
W=/tmp/i13-wheels; VENV=/tmp/i13-venv
[ $# -ge 1 ] || { echo "usage: bash bench/gpu_attn.sh DIR... (folders holding the carried wheels)"; exit 2; }
mkdir -p "$W"
t() { local name=$1; shift; local s=$(date +%s%N); "$@" > "$OUT/$name" 2>&1; local rc=$?
      echo "$name rc=$rc $(( ($(date +%s%N) - s) / 1000000 )) ms" | tee -a "$OUT/times.txt"; return $rc; }

# 1. Wheels: gather, join the parts in name order, check every checksum.
mkdir -p "$W/parts"
for d in "$@"; do cp -f "$d"/* "$W/parts/" 2>/dev/null; done
mv -f "$W"/parts/*.whl "$W"/parts/SHA256SUMS "$W"/ 2>/dev/null
for first in "$W"/parts/*.whl.part-aa; do
    [ -e "$first" ] || continue
    base=${first%.part-aa}
    cat $(ls "$base".part-* | sort) > "$W/$(basename "$base")"
done
(cd "$W" && sha256sum -c SHA256SUMS) > "$OUT/install.txt" 2>&1 || { echo "checksum mismatch:"; cat "$OUT/install.txt"; exit 1; }

# 2. A venv over the machine's torch: its site-packages come first, the machine's follow through a .pth file.
"$BASE_PY" -m venv "$VENV" >> "$OUT/install.txt" 2>&1 || exit 1
PY=$VENV/bin/python
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$BASE_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$SITE/_machine_torch.pth"
# gpustack runs from this checkout (PYTHONPATH); the dependencies the machine lacks (or has too old) go into the venv.
"$PY" -m pip install -q --no-index --no-deps --find-links "$W" packaging==26.0 platformdirs tomli-w cachecontrol >> "$OUT/install.txt" 2>&1
export PYTHONPATH=$REPO PYTHONUNBUFFERED=1
GS="$PY -m resolver"
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader >> "$OUT/times.txt" 2>&1
"$PY" -c 'import torch; print("torch", torch.__version__, torch.version.cuda)' >> "$OUT/times.txt" 2>&1

# 3. Plan and install through gpustack, offline, from the carried wheels; fall back to plain pip (and say so) so the
#    kernels still get verified if gpustack's install refuses.
t plan.json $GS plan --json --python-exe "$PY" 'sageattention==1.0.6' flash-attn-4
if ! t install_gs.txt $GS install 'sageattention==1.0.6' flash-attn-4 --python-exe "$PY" --find-links "$W" --offline --installer pip; then
    cat "$OUT/install_gs.txt" >> "$OUT/install.txt"
    echo "== gpustack install failed (above); falling back to pip" >> "$OUT/install.txt"
    "$PY" -m pip install --no-index --find-links "$W" 'sageattention==1.0.6' 'flash-attn-4[cu13]==4.0.0b36' >> "$OUT/install.txt" 2>&1
else
    cat "$OUT/install_gs.txt" >> "$OUT/install.txt"
fi
rm -f "$OUT/install_gs.txt"
"$PY" -m pip list 2>/dev/null | grep -i -E "sage|flash|cutlass|quack|tvm|dlpack|cuda-bindings|einops|triton|^torch " >> "$OUT/install.txt"

# 4. Verify: the first run on this machine (cold: cuDNN, CuTe-DSL and Triton compile) and a second one (warm).
t verify_cold.json $GS verify --json --python-exe "$PY" --expect flash-attn-4 --expect sageattention
t verify_warm.json $GS verify --json --python-exe "$PY" --expect flash-attn-4 --expect sageattention
t verify.txt $GS verify --python-exe "$PY"

# 5. The gpu-marked tests, with the venv as the target interpreter.
GPUSTACK_VERIFY_PYTHON=$PY t pytest_gpu.txt "$PY" -m pytest -q -p no:cacheprovider tests/gpu -m gpu -rs
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("cold wall_s", r["wall_s"], "ok", r["ok"]); [print(x["backend"], x["op"], x["dtype"], x["passed"], x["ms"], x["tflops"]) for x in r["results"] if x["ms"] is not None or not x["passed"]]' "$OUT/verify_cold.json" >> "$OUT/times.txt" 2>&1
cat "$OUT/times.txt"
