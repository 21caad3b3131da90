"""Benchmark: `gpustack plan --json` for a fleet, end to end, against starting Python and importing click + packaging;
and the solve alone over the full matrix. Goals (issue 2): plan <= 3x the baseline; solve < 20 ms.

Run: python bench/bench_plan.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

FLEET = ["--gpu", "A100", "--gpu", "Tesla T4", "--gpu", "NVIDIA H100 80GB HBM3", "--driver", "535.104.05",
         "--python", "3.11", "--platform", "linux_x86_64"]
SOLVES = [
    (["A100", "Tesla T4", "H100"], "535.104.05", "3.11", "linux_x86_64", ["xformers"]),
    (["Tesla K80"], "470.82.01", "3.10", "linux_x86_64", ["torch==1.12.1", "xformers"]),
    (["H100"], "580.159.04", "3.12", "linux_x86_64", ["xformers", "flash-attn"]),
    (["RTX 4090"], "560.94", "3.11", "win_amd64", ["xformers", "flash-attn"]),
    (["V100"], "535.104.05", "3.11", "linux_x86_64", ["flash-attn"]),  # a refusal, explained
    (["GeForce GTX 1080", "RTX 5090"], "580.65.06", "3.11", "linux_x86_64", []),  # a fleet refusal
]


def _time(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    gpustack = shutil.which("gpustack", path=os.path.dirname(sys.executable)) or "gpustack"
    # pip compiles an installed wheel's bytecode; an editable checkout under PYTHONDONTWRITEBYTECODE=1 (as on this
    # machine) would recompile every module on every run and time the compiler instead of gpustack.
    import compileall

    import resolver

    compileall.compile_dir(os.path.dirname(resolver.__file__), quiet=1)
    print(f"bytecode compiled for {os.path.dirname(resolver.__file__)} "
          f"(PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})")
    base = _time([sys.executable, "-c", "import click, packaging.version, packaging.specifiers"], args.runs)
    plan = _time([gpustack, "plan", "--json", *FLEET, "xformers"], args.runs)
    print(f"baseline (python + import click, packaging): {base * 1000:7.1f} ms")
    print(f"gpustack plan --json (3-GPU fleet + xformers): {plan * 1000:7.1f} ms  = {plan / base:.2f}x baseline (goal <= 3x)")

    from resolver import matrix
    from resolver.gpus import lookup_gpu
    from resolver.models import Target, parse_driver
    from resolver.request import parse_request
    from resolver.solve import solve
    from resolver.errors import NoCompatibleStack

    t0 = time.perf_counter()
    m = matrix.load()
    print(f"matrix load (parse + validate types, in-process): {(time.perf_counter() - t0) * 1000:7.1f} ms")
    worst = 0.0
    for gpus, driver, py, plat, reqs in SOLVES:
        target = Target(tuple(lookup_gpu(g, m) for g in gpus), py, plat, parse_driver(driver))
        times = []
        for i in range(args.runs):
            # A fresh process answers every question once: clear the memo to time a cold solve.
            from resolver import models
            models._allows.cache_clear()
            request = parse_request(reqs, m)
            t0 = time.perf_counter()
            try:
                solve(target, m, request)
                outcome = "stack"
            except NoCompatibleStack:
                outcome = "refusal"
            times.append(time.perf_counter() - t0)
        worst = max(worst, max(times))
        print(f"solve {'+'.join(gpus):40s} {' '.join(reqs) or '-':26s} {outcome:8s} median {statistics.median(times) * 1000:6.2f} ms  max {max(times) * 1000:6.2f} ms")
    print(f"worst cold solve: {worst * 1000:.2f} ms (goal < 20 ms)")


if __name__ == "__main__":
    main()
