"""Cross-check ``gpustack verify``'s timings: time the SDPA backends directly, then run ``gpustack verify --json``.

Prints both per backend (bf16, B4 H16 S4096 D128, forward, not causal) and their ratio; they must agree within 10%.
Run it with the target interpreter (it imports torch): ``python bench/verify_sdpa.py [--python-exe PATH]``.
Exit status 1 when a ratio falls outside [0.9, 1.1].
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

SHAPE = (4, 16, 4096, 128)
BACKENDS = {"sdpa-flash": "FLASH_ATTENTION", "sdpa-efficient": "EFFICIENT_ATTENTION",
            "sdpa-cudnn": "CUDNN_ATTENTION", "sdpa-math": "MATH"}


def direct() -> dict[str, tuple[float, float]]:
    """Returns {backend: (ms, TFLOP/s)} measured in this process with CUDA events (3 warmup, 10 timed calls)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, h, s, d = SHAPE
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out: dict[str, tuple[float, float]] = {}
    for name, attr in BACKENDS.items():
        try:
            with torch.no_grad(), sdpa_kernel([getattr(SDPBackend, attr)]):
                for _ in range(3):
                    F.scaled_dot_product_attention(q, k, v)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                for _ in range(10):
                    F.scaled_dot_product_attention(q, k, v)
                end.record()
                torch.cuda.synchronize()
        except RuntimeError as exc:
            print(f"{name}: {str(exc).splitlines()[0]}", file=sys.stderr)
            continue
        ms = start.elapsed_time(end) / 10
        out[name] = (ms, 4.0 * b * h * s * s * d / (ms * 1e-3) / 1e12)
    return out


def via_verify(python_exe: str) -> tuple[dict[str, Any], float]:
    """Returns (``gpustack verify --json`` report, wall seconds)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "resolver", "verify", "--json", "--python-exe", python_exe],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if not done.stdout.strip():
        raise SystemExit(f"gpustack verify printed nothing (exit {done.returncode}):\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report, wall


def main() -> int:
    """Returns 0 when every backend's direct and verify timings agree within 10%."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-exe", default=sys.executable)
    args = parser.parse_args()
    ours = direct()
    report, wall = via_verify(args.python_exe)
    timed = {r["backend"]: r for r in report["results"] if r.get("ms") is not None and r["backend"] in BACKENDS}
    print(f"{'backend':16} {'direct ms':>10} {'TFLOP/s':>8} {'verify ms':>10} {'TFLOP/s':>8} {'ratio':>6}")
    bad = 0
    for name, (ms, tf) in ours.items():
        row = timed.get(name)
        if row is None:
            print(f"{name:16} {ms:10.3f} {tf:8.1f} {'-':>10} {'-':>8} {'-':>6}")
            bad += 1
            continue
        ratio = row["ms"] / ms
        bad += not 0.9 <= ratio <= 1.1
        print(f"{name:16} {ms:10.3f} {tf:8.1f} {row['ms']:10.3f} {row['tflops']:8.1f} {ratio:6.2f}")
    others = [r for r in report["results"] if r.get("ms") is not None and r["backend"] not in BACKENDS]
    for r in others:
        print(f"{r['backend'] + ' ' + r['op']:40} verify {r['ms']:.3f} ms {r['tflops']:.1f} TFLOP/s")
    print(f"verify ok={report['ok']} wall={wall:.1f} s (report says {report.get('wall_s')} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
