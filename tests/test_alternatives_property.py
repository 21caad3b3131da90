"""Every alternative a refusal prints solves: over targets and requests drawn from the shipped matrices, each
alternative is re-asked of the solver with exactly the change it names (issue 9 item 3).

The alternatives are read back here, in the test, to check them against the solver; no module reads another's text.
Bounded (derandomized, max_examples) to stay a few seconds on 2 cores.
"""

from __future__ import annotations

import dataclasses
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.errors import NoCompatibleStack
from resolver.matrix import load
from resolver.models import Gpu, Target, parse_driver
from resolver.request import Request, parse_request
from resolver.solve import feasible, solve

M = load()
# One GPU per compute capability, so every architecture is drawn as often as the others.
GPUS = sorted({g.compute_capability: (g.name, g.compute_capability) for g in M.gpus
               if not g.integrated and g.compute_capability.major >= 5}.values(), key=lambda g: g[1])
DRIVERS = ["470.256.02", "535.104.05", "550.54.15", "570.86.15", "580.65.06", None]
ASKS = [(["torch<2.7", "xformers<0.0.30"], []), (["torch<2.7"], []), (["flash-attn"], []), (["flash-attn>=3"], []),
        (["torch==2.1.0", "flash-attn-3"], []), (["xformers==0.0.22", "flash-attn"], []), ([], ["audiocraft"]),
        (["xformers>=0.0.34"], ["fairseq"]), (["torch==2.15.0"], []), (["torch<2.7", "flash-attn<2.7"], []),
        (["sageattention>=2"], []), (["torch==2.11.0+cu130", "flash-attn"], []), (["xformers", "torch<2.4"], []),
        (["torch==1.13.1"], [])]

targets = st.builds(
    lambda gpus, driver, python, glibc, nvcc: Target(
        gpus=tuple(Gpu(n, cc) for n, cc in gpus), python=python, platform="linux_x86_64",
        driver=parse_driver(driver) if driver else None, cpu_count=8, memory_gib=32.0, source="given",
        glibc=Version(glibc), nvcc=Version(nvcc) if nvcc else None),
    st.lists(st.sampled_from(GPUS), min_size=1, max_size=2, unique=True),
    st.sampled_from(DRIVERS), st.sampled_from(["3.9", "3.11", "3.12", "3.13"]), st.sampled_from(["2.17", "2.28", "2.35"]),
    st.sampled_from([None, "12.8"]))


def _with(request: Request, **bounds: object) -> Request:
    """The request with ``bounds`` replaced; a requested profile's own bounds still hold (they are never lifted)."""
    profiles = dict(request.profile_bounds)
    for name, bound in list(bounds.items()):
        if isinstance(bound, SpecifierSet) and name.replace("_", "-") in profiles:
            bounds[name] = bound & profiles[name.replace("_", "-")]
    return dataclasses.replace(request, **bounds)  # type: ignore[arg-type]


def _exact(v: str) -> SpecifierSet:
    return SpecifierSet(f"=={v}")


def _solves(alt: str, target: Target, request: Request) -> bool:  # noqa: C901 - one branch per form
    if m := re.match(r"torch==([\w.]+)\+(\w+) with (.+) runs on", alt):
        pins = dict(re.findall(r"([\w-]+)==([\w.]+)", m.group(3)))
        return feasible(target, M, _with(request, torch=_exact(m.group(1)), torch_variant=m.group(2),
                                         **{k.replace("-", "_"): _exact(v) for k, v in pins.items()}))
    if m := re.match(r"torch==([\w.]+)\+(\w+) runs on", alt):
        return feasible(target, M, _with(request, torch=_exact(m.group(1)), torch_variant=m.group(2)))
    if m := re.match(r"torch==([\w.]+)\+(\w+) takes", alt):
        return feasible(target, M, _with(request, torch=_exact(m.group(1)), torch_variant=m.group(2), keep_torch=None))
    if m := re.match(r"torch==([\w.]+)\+(\w+): the newest torch with", alt):
        return feasible(target, M, _with(request, torch=_exact(m.group(1)), torch_variant=m.group(2)))
    if m := re.match(r"torch==([\w.]+): the newest torch whose", alt):
        return feasible(target, M, _with(request, torch=_exact(m.group(1))))
    if m := re.match(r"the newest torch this driver runs on these GPUs is ([\w.]+)\+(\w+)", alt):
        return feasible(target, M, _with(request, torch=_exact(m.group(1)), torch_variant=m.group(2)))
    if m := re.match(r"xformers ([\w.]+) works with torch ([\w.]+)", alt):
        return feasible(target, M, _with(request, torch=_exact(m.group(2)), xformers=_exact(m.group(1))))
    if m := re.match(r"xformers ([\w.]+) has xformers.components", alt):
        return feasible(target, M, _with(request, xformers=_exact(m.group(1))))
    if alt.startswith("xformers (memory_efficient_attention)"):
        return feasible(target, M, _with(request, flash_attn=None, xformers=request.xformers or SpecifierSet()))
    if m := re.match(r"use Python ([\d.]+)(?:–([\d.]+))?", alt):
        return all(feasible(dataclasses.replace(target, python=p), M, request) for p in m.groups() if p)
    if m := re.match(r"update the NVIDIA driver to >= ([\d.]+)", alt):
        return feasible(dataclasses.replace(target, driver=parse_driver(m.group(1))), M, request)
    if m := re.match(r"a host with glibc ([\d.]+)", alt):
        return feasible(dataclasses.replace(target, glibc=Version(m.group(1)), glibc_assumed=False), M, request)
    if m := re.match(r"install a CUDA (\d+)\.x toolkit", alt):
        return any(feasible(dataclasses.replace(target, nvcc=c.cuda), M, request)
                   for c in M.cuda if c.cuda.major == int(m.group(1)))
    if "is the distribution" in alt:
        names = re.findall(r"distribution '([\w-]+)'", alt)
        return all(feasible(target, M, _with(request, flash_attn=None, kernels=request.kernels + ((n, SpecifierSet()),)))
                   for n in names)
    if alt.startswith("torch's scaled_dot_product_attention"):
        return feasible(target, M, _with(request, kernels=()))
    if alt.startswith("drop the attention kernel"):
        return feasible(target, M, _with(request, kernels=()))
    return True  # advice without a version to solve (install NVIDIA's Jetson wheels, check the spelling)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(targets, st.sampled_from(ASKS))
def test_every_printed_alternative_solves(target: Target, ask: tuple[list[str], list[str]]) -> None:
    lines, profiles = ask
    request = parse_request(lines, M, profiles=profiles)
    try:
        solve(target, M, request)
    except NoCompatibleStack as refusal:
        for alt in refusal.alternatives:
            assert _solves(alt, target, request), f"printed but does not solve: {alt}"
