"""Benchmarks of ``gpustack install`` on this machine (no GPU needed).

1. The fixture CUDA extension (tests/fixtures/cuda_ext) built fresh vs installed from the build cache (goal: the
   cache hit >= 20x faster).
2. A single-architecture build (9.0) vs the architecture list torch itself was built with (goal: several times
   faster), for the tiny test fixture and for bench/heavy_ext, whose build is mostly device code as real packages'
   are.
3. pip vs uv installing the same plan (the real torch 2.13.0+cpu wheel from /opt/wheels, no dependencies).
4. ``gpustack install --installer uv`` (the CLI, transaction included: lock, journal, backup, per-step checks)
   against raw ``uv pip install`` of the same pinned set (torch 2.13.0+cpu and its dependencies) from the same
   local indexes, side by side in one run, each into a fresh venv, alternating (goal: ratio <= 1.3); and the floor
   of any Python front end there: its interpreter importing subprocess, json and packaging's requirement parser.

Usage: ``python bench/bench_install.py [--torch-venv DIR]``; DIR holds (or receives) torch 2.14.1 (CUDA 13).
Prints one line per measurement and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from resolver import build
from resolver.install import Installer, Sources, execute, restore_args
from resolver.models import PackageChoice, Plan, Stack, Step, Target

ROOT = Path(__file__).resolve().parents[1]
CUDA_EXT = ROOT / "tests" / "fixtures" / "cuda_ext"
HEAVY_EXT = ROOT / "bench" / "heavy_ext"
HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"  # every venv here is made from this interpreter: plans are for it


def torch_venv(path: Path) -> str:
    """Returns the python of ``path``, creating the venv with torch 2.14.1 when it lacks it."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.14.1", "setuptools", "wheel"], check=True)
    return str(python)


def plan_of(torch: str, *steps: Step) -> Plan:
    return Plan(Stack(Target((), HERE, "linux_x86_64"), (PackageChoice("torch", torch, "wheel"),)), steps)


def timed_install(plan: Plan, python: str, backend: str = "pip", sources: Sources = Sources(),
                  use_cache: bool = True) -> float:
    """Returns the seconds one ``execute`` of ``plan`` took."""
    t0 = time.perf_counter()
    execute(plan, python, Installer(backend, python, restore_args(plan, sources)),  # type: ignore[arg-type]
            sources=sources, use_cache=use_cache, progress=False)
    return time.perf_counter() - t0


def uninstall(python: str, name: str) -> None:
    subprocess.run([python, "-m", "pip", "uninstall", "-y", name], capture_output=True)


def ext_step(arch_list: str, source: Path = CUDA_EXT, name: str = "gpustack-cuda-ext-fixture") -> Step:
    return Step("build", name, str(source), no_deps=True,
                env={"TORCH_CUDA_ARCH_LIST": arch_list, "FORCE_CUDA": "1"}, build_isolation=False)


def bench_heavy(python: str, torch_archs: str) -> dict[str, float]:
    """Returns the build-step seconds of bench/heavy_ext (mostly device code) for 9.0 alone and for torch's list."""
    pip = [python, "-m", "pip"]
    out: dict[str, float] = {}
    for label, archs in (("9.0", "9.0"), ("torch_list", torch_archs)):
        t0 = time.perf_counter()
        build.build(ext_step(archs, HEAVY_EXT, "gpustack-heavy-ext-bench"), python, pip, use_cache=False,
                    progress=False)
        out[f"heavy_build_{label}_s"] = time.perf_counter() - t0
    out["heavy_single_arch_speedup_x"] = out["heavy_build_torch_list_s"] / out["heavy_build_9.0_s"]
    return out


def bench_builds(python: str) -> dict[str, float]:
    """Returns seconds for fresh builds (one arch, torch's list) and for the cache hit."""
    torch_archs = subprocess.run(
        [python, "-c", "import torch; print(';'.join(a[3:-1]+'.'+a[-1] for a in torch.cuda.get_arch_list()))"],
        capture_output=True, text=True, check=True).stdout.strip()
    out: dict[str, float] = {}
    single = plan_of("2.14.1+cu130", ext_step("9.0"))
    out["fresh_build_9.0_s"] = timed_install(single, python, use_cache=False)
    uninstall(python, "gpustack-cuda-ext-fixture")
    # The whole cached reinstall (transaction, cache lookup, install of the cached wheel, checks), with pip and with
    # uv (what --installer auto takes when uv is there), alternating, median of 3.
    from resolver.uvbin import find_uv

    hits: dict[str, list[float]] = {"pip": [], "uv": []} if find_uv() else {"pip": []}
    for _ in range(3):
        for backend in hits:
            hits[backend].append(timed_install(single, python, backend))
            uninstall(python, "gpustack-cuda-ext-fixture")
    print("cached reinstalls (s): " + "; ".join(f"{b} " + " ".join(f"{t:.2f}" for t in v) for b, v in hits.items()),
          file=sys.stderr)
    out["cache_hit_9.0_s"] = sorted(hits["pip"])[1]
    if "uv" in hits:
        out["cache_hit_uv_9.0_s"] = sorted(hits["uv"])[1]
    full = plan_of("2.14.1+cu130", ext_step(torch_archs))
    out[f"fresh_build_{torch_archs}_s"] = timed_install(full, python, use_cache=False)
    uninstall(python, "gpustack-cuda-ext-fixture")
    out["cache_speedup_x"] = out["fresh_build_9.0_s"] / out["cache_hit_9.0_s"]
    if "cache_hit_uv_9.0_s" in out:
        out["cache_speedup_uv_x"] = out["fresh_build_9.0_s"] / out["cache_hit_uv_9.0_s"]
    out.update(bench_heavy(python, torch_archs))
    # The build step alone (what the cache replaces), without the install around it: pip start-up, the environment
    # snapshot and the torch guard cost the same with or without a cache and hide the cache's own effect.
    pip = [python, "-m", "pip"]
    t0 = time.perf_counter()
    build.build(ext_step("9.0"), python, pip, use_cache=False, progress=False)
    out["build_step_fresh_9.0_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    hit = build.build(ext_step("9.0"), python, pip, progress=False)
    out["build_step_cache_hit_s"] = time.perf_counter() - t0
    assert hit.cache_hit
    out["build_step_cache_speedup_x"] = out["build_step_fresh_9.0_s"] / out["build_step_cache_hit_s"]
    out["single_arch_speedup_x"] = out[f"fresh_build_{torch_archs}_s"] / out["fresh_build_9.0_s"]
    return out


def bench_installers(work: Path) -> dict[str, float]:
    """Returns seconds pip and uv took installing torch 2.13.0+cpu from /opt/wheels (after one warm-up each)."""
    step = Step("install", "torch", "torch==2.13.0+cpu", index_url="https://download.pytorch.org/whl/cpu",
                no_deps=True)
    plan = plan_of("2.13.0+cpu", step)
    sources = Sources(("/opt/wheels",))
    out: dict[str, float] = {}
    for backend in ("pip", "uv"):
        venv = work / f"venv-{backend}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        timed_install(plan, python, backend, sources)  # warm the installer's cache
        uninstall(python, "torch")
        out[f"{backend}_install_torch_cpu_s"] = timed_install(plan, python, backend, sources)
    out["uv_speedup_x"] = out["pip_install_torch_cpu_s"] / out["uv_install_torch_cpu_s"]
    return out


LOCAL_INDEXES = ("file:///opt/pypi/simple", "file:///opt/pypi-more/simple")


def installed_gpustack(work: Path, env: dict[str, str]) -> str:
    """Return the ``gpustack`` command of a fresh venv that holds this checkout as users install it: a wheel, not
    the editable install this checkout runs from (whose import hook costs every start ~7 ms). Its dependencies are
    this interpreter's, seen through a ``.pth`` line (that folder's own ``.pth`` files, the editable hook among
    them, are not run), and its ``uv`` (a dependency) lies beside its Python, where installing the wheel with its
    dependencies puts it (``resolver.uvbin.find_uv`` looks there first)."""
    import site
    import sysconfig

    venv = work / "gpustack-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheels = work / "gpustack-wheel"
    uv = _uv()
    subprocess.run([uv, "build", "--wheel", "-q", "--index-url", LOCAL_INDEXES[0], "-o", str(wheels), str(ROOT)],
                   check=True, env=env)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"] if sys.prefix != sys.base_prefix else site.getsitepackages()[0]
    Path(purelib, "gpustack-deps.pth").write_text(ours + "\n")
    (venv / "bin" / "uv").symlink_to(uv)
    subprocess.run([uv, "pip", "install", "-q", "--no-deps", "--python", str(python),
                    *map(str, wheels.glob("*.whl"))], check=True, env=env)
    subprocess.run([str(python), "-m", "compileall", "-q", purelib], check=True, capture_output=True)
    gpustack = venv / "bin" / "gpustack"
    where = subprocess.run([str(gpustack), "--version"], check=True, capture_output=True, text=True, env=env)
    assert "gpustack" in where.stdout, where.stdout
    return str(gpustack)


def _uv() -> str:
    from resolver.uvbin import find_uv

    return find_uv() or "uv"


def bench_vs_raw_uv(work: Path, rounds: int = 11, cold_rounds: int = 5) -> dict[str, float]:
    """Returns the median seconds of raw ``uv pip install`` and of ``gpustack install --installer uv`` of
    torch==2.13.0+cpu with its dependencies, their ratio and the paired difference, each into a new venv: with uv's
    cache warm (every file already unpacked in it: uv links them, the strictest base; ``warm``), the same with the
    venv's interpreter already read by uv (a venv uv has installed into before: uv skips that ~40 ms step, and
    gpustack's own head start on it gains nothing; ``known``), and cold (an empty cache per run, as a first install
    on a machine: uv unpacks torch; ``cold``)."""
    from resolver.installers import uv_source_args

    uv = _uv()
    iso = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    iso.pop("PYTHONPATH", None)  # it would reach the target venv too (gpustack's own checkout in its snapshot)
    iso.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_CACHE_DIR=str(work / "uv-cache"),
               GPUSTACK_CACHE_DIR=str(work / "gs-cache"))
    source = ["--index-url", LOCAL_INDEXES[0], "--extra-index-url", LOCAL_INDEXES[1], "--find-links", "/opt/wheels"]
    step = Step("install", "torch", "torch==2.13.0+cpu", index_url=LOCAL_INDEXES[0],
                extra_index_urls=LOCAL_INDEXES[1:], description="torch 2.13.0+cpu")
    plan = Plan(Stack(Target((), HERE, "linux_x86_64"), (PackageChoice("torch", "2.13.0+cpu", "wheel",
                                                                        cuda=None),)), (step,))
    plan_path = work / "plan.json"
    plan_path.write_text(json.dumps(plan.to_dict()))

    def fresh(name: str) -> str:
        venv = work / name
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=iso)
        return str(venv / "bin" / "python")

    def raw(python: str, env: dict[str, str]) -> None:
        subprocess.run([uv, "pip", "install", "-q", "--python", python, *uv_source_args(source),
                        "torch==2.13.0+cpu"], check=True, env=env)

    command = installed_gpustack(work, iso)
    iso["PATH"] = os.path.dirname(uv) + os.pathsep + iso.get("PATH", "")  # where users keep uv: on PATH

    def gpustack(python: str, env: dict[str, str]) -> None:
        done = subprocess.run([command, "install", "--plan", str(plan_path), "--python-exe", python,
                               "--installer", "uv", "--find-links", "/opt/wheels"], env=env, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise SystemExit(f"gpustack install failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    raw(fresh("warm"), iso)  # fill uv's cache: both then install from it (gpustack takes the wheel by its path in
    gpustack(fresh("warm-gs"), iso)  # /opt/wheels, which uv caches apart from the index's copy: warm that too)
    out: dict[str, float] = {}
    for mode, n in (("warm", rounds), ("known", rounds), ("cold", cold_rounds)):
        if n < 1:
            continue
        times: dict[str, list[float]] = {"raw": [], "gpustack": []}
        for i in range(n):
            for name, fn in (("raw", raw), ("gpustack", gpustack)):
                python = fresh(f"{mode}-{name}-{i}")
                env = iso if mode != "cold" else {**iso, "UV_CACHE_DIR": str(work / f"uv-cache-{name}-{i}")}
                if mode == "known":  # a venv uv has read before (its record of the interpreter is in uv's cache)
                    subprocess.run([uv, "python", "find", python], check=True, env=env, capture_output=True)
                os.sync()  # the earlier runs' writes (thousands of links to torch's files) must not land in this one
                t0 = time.perf_counter()
                fn(python, env)
                times[name].append(time.perf_counter() - t0)
        print(f"{mode}: alternating runs (s): raw uv " + " ".join(f"{t:.3f}" for t in times["raw"])
              + " | gpustack " + " ".join(f"{t:.3f}" for t in times["gpustack"]), file=sys.stderr)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        diffs = sorted(g - r for g, r in zip(times["gpustack"], times["raw"]))  # each pair ran back to back
        out.update({f"{mode}_raw_uv_install_torch_cpu_s": med["raw"],
                    f"{mode}_gpustack_uv_install_torch_cpu_s": med["gpustack"],
                    f"{mode}_gpustack_over_raw_uv_ratio": med["gpustack"] / med["raw"],
                    f"{mode}_gpustack_minus_raw_uv_ms": 1000 * diffs[len(diffs) // 2]})
    out.update(python_floor(os.path.join(os.path.dirname(command), "python"), iso))
    if "known_raw_uv_install_torch_cpu_s" in out:
        out["known_allowed_ms"] = 300 * out["known_raw_uv_install_torch_cpu_s"]  # what a 1.3 ratio leaves gpustack
    return out


def python_floor(python: str, env: dict[str, str], rounds: int = 21) -> dict[str, float]:
    """Return the median wall time of gpustack's own interpreter doing nothing (``python_start_ms``) and importing
    only what any Python front end needs before it may start uv on a plan: subprocess to start it, json to read the
    plan, packaging's requirement parser to check it (``python_floor_ms``; alternating, the collector off as
    ``resolver.start`` has it). Set against ``known_allowed_ms``: the floor alone nearly fills what a 1.3 ratio
    allows into a venv uv knows."""
    pre = "import gc; gc.disable(); "
    runs: dict[str, list[float]] = {"python_start_ms": [], "python_floor_ms": []}
    for _ in range(rounds):
        for name, code in (("python_start_ms", "pass"),
                           ("python_floor_ms", "import subprocess, json, packaging.requirements")):
            t0 = time.perf_counter()
            subprocess.run([python, "-c", pre + code], check=True, env=env)
            runs[name].append(1000 * (time.perf_counter() - t0))
    return {k: sorted(v)[len(v) // 2] for k, v in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-venv", default=os.environ.get("GPUSTACK_TEST_TORCH_VENV", "/tmp/gs-torch-venv"))
    parser.add_argument("--skip-builds", action="store_true")
    parser.add_argument("--only-vs-uv", action="store_true", help="Run only the gpustack-vs-raw-uv comparison.")
    parser.add_argument("--rounds", type=int, default=11, help="Alternating rounds, uv's cache warm.")
    parser.add_argument("--cold-rounds", type=int, default=5, help="Alternating rounds, uv's cache empty.")
    parser.add_argument("--vs-uv-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="Where the gpustack-vs-raw-uv venvs and uv cache live (default: /dev/shm, a memory "
                             "file system: disk writeback, which moves uv's time by 2x here, then decides nothing, "
                             "and uv is at its fastest, the strictest base for the ratio).")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gpustack-bench-") as tmp:
        os.environ["GPUSTACK_CACHE_DIR"] = str(Path(tmp) / "cache")
        if not args.skip_builds and not args.only_vs_uv:
            results.update(bench_builds(torch_venv(Path(args.torch_venv))))
        if not args.only_vs_uv:
            results.update(bench_installers(Path(tmp)))
        with tempfile.TemporaryDirectory(prefix="gpustack-bench-uv-", dir=args.vs_uv_dir) as vs:
            results.update(bench_vs_raw_uv(Path(vs), args.rounds, args.cold_rounds))
    for name, value in results.items():
        print(f"{name:40s} {value:8.2f}")
    print(json.dumps({k: round(v, 2) for k, v in results.items()}))


if __name__ == "__main__":
    main()
