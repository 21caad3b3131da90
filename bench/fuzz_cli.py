"""Figures for docs/input.md: run every case of tests/fuzz_cases.py through the installed `gpustack` console script
and count clean errors (exit 2, one `gpustack:` line), tracebacks, hangs (60 s) and runs that changed a file.

Run: python bench/fuzz_cli.py
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import fuzz_cases  # noqa: E402


def main() -> None:
    gpustack = shutil.which("gpustack", path=os.path.dirname(sys.executable)) or "gpustack"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "box"
        root.mkdir()
        fuzz_cases.sandbox(root)
        env = {**os.environ, "GPUSTACK_CACHE_DIR": str(Path(tmp) / "cache"), "PIP_CONFIG_FILE": "/dev/null"}
        subprocess.run([gpustack, "plan", *fuzz_cases.TARGET], env=env, capture_output=True)
        cases = [c for c in fuzz_cases.cases(root) if not any("\x00" in a for a in c[1])]
        before = fuzz_cases.snapshot(root)
        changed = 0

        def one(case: tuple[str, list[str]]) -> tuple[str, str]:
            label, argv = case
            try:
                done = subprocess.run([gpustack, *argv], env=env, cwd=root, capture_output=True, text=True, timeout=60)
                return label, fuzz_cases.verdict(done.returncode, done.stdout, done.stderr)
            except subprocess.TimeoutExpired:
                return label, "hang"

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(one, cases))
        if fuzz_cases.snapshot(root) != before:
            changed = 1
        counts = collections.Counter(v for _, v in results)
        print(f"inputs tried: {len(results)} over {len({l.split()[0] for l, _ in results})} subcommands "
              f"({time.monotonic() - started:.0f} s, 2 workers)")
        print(f"clean errors (exit 2, one line): {counts['clean']}")
        print(f"tracebacks: {counts['traceback']}   hangs: {counts['hang']}   sandbox changed: {'yes' if changed else 'no'}")
        for (label, verdict) in results:
            if verdict != "clean":
                print(f"  NOT CLEAN: {label}: {verdict}")


if __name__ == "__main__":
    main()
