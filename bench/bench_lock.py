"""Benchmark of ``gpustack lock`` against ``uv pip compile --format pylock.toml`` of the same pins and target, side
by side in one run (needs PyPI).

Cases (Python 3.10, linux x86_64, an A100 and driver 535.104.05):

* ``audiocraft``: ``--profile audiocraft`` (torch 2.1.0 + xformers 0.0.22.post7). download.pytorch.org is not
  reachable here, so the plan takes PyPI's torch 2.1.0 (PyPI's build of 2.1.0 is the cu121 one) - the same pins a
  user gets from ``gpustack plan``.
* ``torch-xformers-flash``: ``torch==2.1.0 xformers flash-attn``. The plan now takes flash-attn's prebuilt wheel
  from its GitHub release (a direct URL uv must download to read its metadata); GitHub is not reachable here, so
  where uv's own run of the case fails it is reported as skipped, with uv's last error line, not timed.
* ``torch-xformers``: ``torch==2.1.0 xformers`` (the same stack without flash-attn, measurable here).

"The same pins" are what gpustack hands uv: the plan's wheel steps, each pinned to the index the plan takes it
from, with the plan's constraints (torch's exact build, ``numpy<2`` from matrices/pins.toml), for the same
``--python-version`` / ``--python-platform`` - so the ratio is gpustack's whole cost (solve, plan, the uv run,
the Requires-Python/tag check of every file, the sdist lookup, writing) over uv's resolution alone.

* warm: uv's cache filled by an untimed run first; median of ``--runs`` runs each, alternating which goes first;
  every gpustack run writes a new file (no re-lock prefetch).
* cold: a new empty ``UV_CACHE_DIR`` (and gpustack cache) for every run.

Goals: gpustack <= 1.5x uv warm, <= 2x cold. Usage: ``python bench/bench_lock.py [--runs N] [--cold-runs N]``;
prints one line per case and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from resolver import lock_resolve
from resolver.models import PYPI_SIMPLE
from resolver.pipeline import PlanOptions, fresh_plan_for
from resolver.plan import plan_constraints

TARGET = ["--gpu", "A100", "--driver", "535.104.05", "--python", "3.10", "--platform", "linux_x86_64"]
CASES = {
    "audiocraft": (["--profile", "audiocraft"], (), ("audiocraft",)),
    "torch-xformers-flash": ([], ("torch==2.1.0", "xformers", "flash-attn"), ()),
    "torch-xformers": ([], ("torch==2.1.0", "xformers"), ()),
}


class RunFailed(Exception):
    """A timed command failed (its last stderr line is the message)."""


def _uv_argv(requirements: tuple[str, ...], profiles: tuple[str, ...], work: Path) -> list[str]:
    """Return the ``uv pip compile`` of the same pins and target as ``gpustack lock`` (its inputs written to work)."""
    opts = PlanOptions.from_cli({"gpus": ("A100",), "driver": "535.104.05", "python_version": "3.10",
                                 "platform_tag": "linux_x86_64", "profiles": profiles})
    plan, _ = fresh_plan_for(requirements, opts)
    project, cons = lock_resolve._write_inputs(work, plan, plan_constraints(plan), PYPI_SIMPLE)
    uv = lock_resolve.find_uv()
    assert uv, "uv is not installed"
    target = plan.stack.target
    return [uv, "pip", "compile", str(project), "--format", "pylock.toml", "-o", str(work / "pylock.uv.toml"),
            "--no-header", "--quiet", "--python-version", target.python,
            "--python-platform", lock_resolve.python_platform(target.platform, str(target.glibc) if target.glibc else None),
            "--index-url", PYPI_SIMPLE, "--constraint", str(cons), "--python", sys.executable]


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
    args = ap.parse_args()
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="gpustack-bench-lock-") as name:
        tmp = Path(name)
        for case, (flags, reqs, profiles) in CASES.items():
            work = tmp / case
            work.mkdir()
            uv_argv = _uv_argv(reqs, profiles, work)
            counter = iter(range(10_000))

            def gs_argv() -> list[str]:
                return [sys.executable, "-m", "resolver", "lock", *TARGET, *flags, *reqs,
                        "-o", str(work / f"gpustack.{next(counter)}.toml")]

            def env_for(cache: Path) -> dict[str, str]:
                return lock_resolve.isolated_env(UV_CACHE_DIR=str(cache / "uv"), GPUSTACK_CACHE_DIR=str(cache / "gs"))

            timings: dict[str, list[float]] = {"gpustack warm": [], "uv warm": [], "gpustack cold": [], "uv cold": []}
            warm = env_for(work / "warm-cache")
            try:
                _timed(uv_argv, warm)  # fill the caches, untimed
            except RunFailed as exc:  # uv itself cannot resolve the case here: nothing to compare against
                print(f"{case}: skipped ({exc})", flush=True)
                results.append({"case": case, "skipped": str(exc)})
                continue
            _timed(gs_argv(), warm)
            for i in range(args.runs):
                order = [("gpustack warm", gs_argv), ("uv warm", lambda: uv_argv)]
                for label, make in (order if i % 2 == 0 else order[::-1]):
                    timings[label].append(_timed(make(), warm))
            for i in range(args.cold_runs):
                order = [("gpustack cold", gs_argv), ("uv cold", lambda: uv_argv)]
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
    print(json.dumps({"runs": args.runs, "cold_runs": args.cold_runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
