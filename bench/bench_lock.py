"""Benchmark of ``gpustack lock`` against ``uv pip compile --format pylock.toml`` of the same pins and target, side
by side in one run (needs PyPI).

Cases (Python 3.10, linux x86_64, an A100 and driver 535.104.05):

* ``audiocraft``: ``--profile audiocraft`` (torch 2.1.0 + xformers 0.0.22.post7). download.pytorch.org is not
  reachable here, so the plan takes PyPI's torch 2.1.0 (PyPI's build of 2.1.0 is the cu121 one) - the same pins a
  user gets from ``gpustack plan``.
* ``torch-xformers-flash``: ``torch==2.1.0 xformers flash-attn --glibc 2.35``. For a glibc 2.35 host (Ubuntu 22.04)
  the plan takes flash-attn 2.7.3's prebuilt wheel from its GitHub release (built on Ubuntu 22.04, it needs that
  glibc: without ``--glibc`` the assumed 2.28 makes it a source build, a different lock); gpustack gives uv its
  install_requires from the matrix (torch, einops) instead of the URL, and locks the wheel by URL without a hash,
  so nothing waits on GitHub (unreachable here). uv gets the same request. A case whose uv run fails is reported
  as skipped, with uv's last error line, not timed.
* ``torch-xformers``: ``torch==2.1.0 xformers`` (the same stack without flash-attn, measurable here).

"The same pins" are what gpustack hands uv: the plan's wheel steps, each pinned to the index the plan takes it
from, with the plan's constraints (torch's exact build, ``numpy<2`` from matrices/pins.toml), for the same
``--python-version`` / ``--python-platform`` - so the ratio is gpustack's whole cost (solve, plan, the uv run,
the Requires-Python/tag check of every file, the sdist lookup, writing) over uv's resolution alone.

* warm: uv's cache and gpustack's cache (``GPUSTACK_CACHE_DIR``: the parsed matrix, the lock's uv-request hint,
  ``resolver.lock_speculate``) filled by an untimed run of each first; median of ``--runs`` runs each, alternating
  which goes first; every gpustack run writes a new file (no re-lock).
* cold: a new empty ``UV_CACHE_DIR`` and ``GPUSTACK_CACHE_DIR`` for every run (so no matrix cache and no hint).
* gpustack's bytecode is compiled first, as an installed gpustack has it.
* Each run of either tool writes a fresh lock. uv reads an existing output file as preferences (a re-lock), which
  makes it ~0.07 s faster here; gpustack's uv run never has one, so neither does the baseline (``--uv-relock``
  measures the baseline with them, as this bench did before).

Goals: gpustack <= 1.5x uv warm, <= 2x cold. Usage: ``python bench/bench_lock.py [--runs N] [--cold-runs N]
[--no-hint] [--uv-relock]``; prints one line per case and a JSON summary. ``--no-hint`` removes gpustack's hint
before each warm run (a command line's first run: uv starts after planning).
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import resolver
from resolver import lock_resolve
from resolver.models import PYPI_SIMPLE
from resolver.pipeline import PlanOptions, fresh_plan_for
from resolver.plan import plan_constraints

TARGET = ["--gpu", "A100", "--driver", "535.104.05", "--python", "3.10", "--platform", "linux_x86_64"]
CASES = {
    "audiocraft": (["--profile", "audiocraft"], (), ("audiocraft",)),
    "torch-xformers-flash": (["--glibc", "2.35"], ("torch==2.1.0", "xformers", "flash-attn"), ()),
    "torch-xformers": ([], ("torch==2.1.0", "xformers"), ()),
}


class RunFailed(Exception):
    """A timed command failed (its last stderr line is the message)."""


def _uv_argv(requirements: tuple[str, ...], profiles: tuple[str, ...], work: Path, flags: list[str]) -> list[str]:
    """Return the ``uv pip compile`` of the same pins and target as ``gpustack lock`` (its inputs written to work;
    ``flags``: the case's own, of which ``--glibc`` changes the plan)."""
    glibc = flags[flags.index("--glibc") + 1] if "--glibc" in flags else None
    opts = PlanOptions.from_cli({"gpus": ("A100",), "driver": "535.104.05", "python_version": "3.10",
                                 "platform_tag": "linux_x86_64", "profiles": profiles, "glibc": glibc})
    plan, ctx = fresh_plan_for(requirements, opts)
    uv = lock_resolve.find_uv()
    assert uv, "uv is not installed"
    # The very argv gpustack runs (lock_uv.uv_argv) on the very request it builds from the plan (uv_request).
    request = lock_resolve.uv_request(plan, plan_constraints(plan), PYPI_SIMPLE, ctx.matrix)
    return lock_resolve.uv_argv(uv, request, work)


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RunFailed(f"{' '.join(argv[:4])} failed: {(done.stderr.strip().splitlines() or [''])[-1]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="warm runs of each tool per case (median reported)")
    ap.add_argument("--cold-runs", type=int, default=2, help="cold runs of each tool per case (median reported)")
    ap.add_argument("--uv-relock", action="store_true",
                    help="let uv re-lock over its previous output (its preferences) instead of a fresh lock each run")
    ap.add_argument("--no-hint", action="store_true",
                    help="remove gpustack's uv-request hint before each warm run (resolver.lock_speculate)")
    args = ap.parse_args()
    # An installed gpustack has its bytecode compiled (pip compiles at install; Python writes it on first import).
    # A checkout run with PYTHONDONTWRITEBYTECODE=1 would compile every module on every run instead.
    compileall.compile_dir(str(Path(resolver.__file__).parent), quiet=1)
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="gpustack-bench-lock-") as name:
        tmp = Path(name)
        for case, (flags, reqs, profiles) in CASES.items():
            work = tmp / case
            work.mkdir()
            uv_cmd = _uv_argv(reqs, profiles, work, flags)
            uv_out = work / "pylock.toml"
            counter = iter(range(10_000))

            def uv_argv() -> list[str]:
                # uv reads an existing output file as its preferences (a re-lock: fewer versions to try, ~0.07 s
                # faster here). Each gpustack run writes a fresh lock, so each uv run does too (--uv-relock: not).
                if not args.uv_relock:
                    uv_out.unlink(missing_ok=True)
                return uv_cmd

            def gs_argv() -> list[str]:
                if args.no_hint:  # as on the first run of a command line: uv starts only once the plan is made
                    shutil.rmtree(work / "warm-cache" / "gs" / "lock-hints", ignore_errors=True)
                return [sys.executable, "-m", "resolver", "lock", *TARGET, *flags, *reqs,
                        "-o", str(work / f"pylock.gs{next(counter)}.toml")]

            def env_for(cache: Path) -> dict[str, str]:
                return lock_resolve.isolated_env(UV_CACHE_DIR=str(cache / "uv"), GPUSTACK_CACHE_DIR=str(cache / "gs"))

            timings: dict[str, list[float]] = {"gpustack warm": [], "uv warm": [], "gpustack cold": [], "uv cold": []}
            warm = env_for(work / "warm-cache")
            try:
                _timed(uv_argv(), warm)  # fill the caches, untimed
            except RunFailed as exc:  # uv itself cannot resolve the case here: nothing to compare against
                print(f"{case}: skipped ({exc})", flush=True)
                results.append({"case": case, "skipped": str(exc)})
                continue
            _timed(gs_argv(), warm)
            for i in range(args.runs):
                order = [("gpustack warm", gs_argv), ("uv warm", uv_argv)]
                for label, make in (order if i % 2 == 0 else order[::-1]):
                    timings[label].append(_timed(make(), warm))
            for i in range(args.cold_runs):
                order = [("gpustack cold", gs_argv), ("uv cold", uv_argv)]
                for j, (label, make) in enumerate(order if i % 2 == 0 else order[::-1]):
                    timings[label].append(_timed(make(), env_for(work / f"cold-{i}-{j}")))
            med = {k: statistics.median(v) for k, v in timings.items()}
            row = {"case": case, **{k: round(v, 2) for k, v in med.items()},
                   "ratio warm": round(med["gpustack warm"] / med["uv warm"], 2),
                   "ratio cold": round(med["gpustack cold"] / med["uv cold"], 2)}
            results.append(row)
            print(f"{case}: warm gpustack {row['gpustack warm']} s vs uv {row['uv warm']} s = {row['ratio warm']}x "
                  f"(goal <= 1.5x); cold gpustack {row['gpustack cold']} s vs uv {row['uv cold']} s = "
                  f"{row['ratio cold']}x (goal <= 2x)", flush=True)
    print(json.dumps({"runs": args.runs, "cold_runs": args.cold_runs, "uv_relock": args.uv_relock,
                      "no_hint": args.no_hint,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
