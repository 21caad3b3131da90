#!/bin/bash
# GPU install check (issue 8), run from the repo root on the H200 machine:   bash bench/gpu_install.sh [CARRY_DIR]
#
# No network there. The machine's torch lives in /opt/torch/.venv (Python 3.12, torch 2.11.0+cu130); a plain venv
# does not see it, so each venv made here gets a .pth file holding that venv's site-packages.
# CARRY_DIR (default: gpu-carry/i8 beside the repo, else /work/gpu-carry/i8, else ./carry) holds the cp312 wheels:
# sageattention 1.0.6, uv, and gpustack's dependencies the machine lacks (platformdirs, tomli-w, packaging>=26.1,
# cachecontrol).
#
# 1. a tool venv runs gpustack (from this checkout, on PYTHONPATH);
# 2. a target venv sees the machine's torch; `gpustack install sageattention==1.0.6 --verify` from the carried
#    wheels (--find-links DIR --offline), once with --installer uv, then (after uninstalling it) with --installer pip;
# 3. one more install is interrupted with SIGTERM while its installer runs: `pip freeze` before and after must match
#    and the journal must be gone.
# Prints one RESULT line per part; exits non-zero when one fails.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
MACHINE_PY=${GPUSTACK_MACHINE_PY:-/opt/torch/.venv/bin/python3}
CARRY=${1:-}
for c in "$CARRY" "$REPO/../gpu-carry/i8" "$REPO/gpu-carry/i8" /work/gpu-carry/i8 "$REPO/carry"; do
  if [ -n "$c" ] && ls "$c"/sageattention-1.0.6-*.whl >/dev/null 2>&1; then CARRY=$(cd "$c" && pwd); break; fi
done
[ -n "$CARRY" ] && [ -d "$CARRY" ] || { echo "RESULT setup FAIL: no folder with sageattention-1.0.6-*.whl (pass it as \$1)"; exit 2; }
[ -x "$MACHINE_PY" ] || { echo "RESULT setup FAIL: $MACHINE_PY missing (set GPUSTACK_MACHINE_PY)"; exit 2; }
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 UV_NO_CONFIG=1 PIP_NO_INDEX=1
WORK=$(mktemp -d /tmp/gpustack-gpu-install.XXXXXX)
export GPUSTACK_CACHE_DIR=$WORK/cache
# GPUSTACK_GPU_ARGS: extra target options, for trying this script's logic on a machine without the GPU.
read -r -a EXTRA <<< "${GPUSTACK_GPU_ARGS:-}"
MACHINE_SITE=$("$MACHINE_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "machine python: $MACHINE_PY ($("$MACHINE_PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'))"
echo "carry: $CARRY; work: $WORK"
fails=0

mkvenv() {  # mkvenv DIR: a venv (with pip) that also sees the machine's site-packages
  "$MACHINE_PY" -m venv "$1" || return 1
  local site
  site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$MACHINE_SITE" > "$site/zz-machine-torch.pth"
}

# --- 1. the tool venv -----------------------------------------------------------------------------------------
mkvenv "$WORK/tool" || { echo "RESULT setup FAIL: venv"; exit 1; }
"$WORK/tool/bin/python" -m pip install -q --no-index --find-links "$CARRY" uv platformdirs tomli-w "packaging>=26.1" \
  || { echo "RESULT setup FAIL: pip install of the carried wheels"; exit 1; }
# only `gpustack lock` needs it (imported lazily); its own dependencies (msgpack, requests, filelock) are there
"$WORK/tool/bin/python" -m pip install -q --no-index --find-links "$CARRY" "cachecontrol>=0.14" \
  || echo "note: cachecontrol not installed (not needed by install)"
export PATH="$WORK/tool/bin:$PATH"
gpustack() { PYTHONPATH="$REPO" "$WORK/tool/bin/python" -m resolver "$@"; }
gpustack --version || { echo "RESULT setup FAIL: gpustack does not start"; exit 1; }
uv --version

# --- 2. install with --verify, uv then pip ---------------------------------------------------------------------
mkvenv "$WORK/target" || { echo "RESULT setup FAIL: target venv"; exit 1; }
T="$WORK/target/bin/python"
"$T" -c 'import torch; print("target venv sees torch", torch.__version__, torch.cuda.get_device_name(0))'
for inst in uv pip; do
  "$T" -m pip uninstall -y -q sageattention >/dev/null 2>&1
  echo "== gpustack install sageattention==1.0.6 --verify --installer $inst"
  t0=$(date +%s.%N)
  gpustack install sageattention==1.0.6 --python-exe "$T" --find-links "$CARRY" --offline --installer "$inst" --verify "${EXTRA[@]}"
  rc=$?
  secs=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
  got=$("$T" -c 'import importlib.metadata as m; print(m.version("sageattention"))' 2>/dev/null)
  if [ $rc -eq 0 ] && [ "$got" = "1.0.6" ]; then echo "RESULT install-$inst OK (${secs}s, sageattention $got)"
  else echo "RESULT install-$inst FAIL (exit $rc, sageattention ${got:-absent})"; fails=$((fails+1)); fi
done

# --- 3. SIGTERM while the installer runs: the environment is unchanged ------------------------------------------
"$T" -m pip uninstall -y -q sageattention >/dev/null 2>&1
"$T" -m pip freeze --all | sort > "$WORK/before.txt"
TSITE=$("$T" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# started directly (not through the shell function), so that $! is gpustack's own pid
PYTHONPATH="$REPO" "$WORK/tool/bin/python" -m resolver install sageattention==1.0.6 --python-exe "$T" \
  --find-links "$CARRY" --offline --installer pip "${EXTRA[@]}" > "$WORK/sigterm.log" 2>&1 &
gp=$!
sent=""
kids() {  # gpustack's child pids (/proc/PID/task/*/children; a full /proc scan where that file is missing)
  local f found=""
  for f in /proc/"$gp"/task/*/children; do [ -r "$f" ] && found=1 && cat "$f"; done
  [ -n "$found" ] || ls -d /proc/[0-9]* | sed 's,/proc/,,'
}
for _ in $(seq 1 6000); do  # up to about a minute: wait for the installer child (pip install ... sageattention)
  for pid in $(kids); do
    cmd=$( { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null ) || continue
    case "$cmd" in *"pip install"*sageattention*)
      # let pip change the environment first (the package's files appear), then SIGTERM gpustack
      for _ in $(seq 1 2000); do [ -d "$TSITE/sageattention" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.002; done
      kill -TERM "$gp"; sent="while pid $pid ran ($( [ -d "$TSITE/sageattention" ] && echo "its files already in place" || echo "before its files were in place")): ${cmd:0:100}"; break 2;;
    esac
  done
  kill -0 "$gp" 2>/dev/null || break
  sleep 0.005
done
wait "$gp"; rc=$?
"$T" -m pip freeze --all | sort > "$WORK/after.txt"
cat "$WORK/sigterm.log"
echo "SIGTERM sent ${sent:-never (the install ended first)}; gpustack exit $rc"
leftover=$(ls "$WORK/target/.gpustack/transaction.json" 2>/dev/null)
stray=$(ls -d "$TSITE/sageattention" 2>/dev/null)
if [ -n "$sent" ] && diff -u "$WORK/before.txt" "$WORK/after.txt" && [ -z "$leftover" ] && [ -z "$stray" ] \
   && [ $rc -eq 143 ]; then
  echo "RESULT sigterm OK (pip freeze unchanged: $(wc -l < "$WORK/before.txt") lines; exit 143; no journal left)"
else
  echo "RESULT sigterm FAIL (signal ${sent:+sent }${sent:-not sent}, exit $rc, journal ${leftover:-gone}, stray files ${stray:-none})"; fails=$((fails+1))
fi
echo "pip freeze before/after: $WORK/before.txt $WORK/after.txt"
exit $fails
