"""xformers and flash-attn for one chosen torch build: the newest release that fits, as a wheel when one exists.

Pure. ``choose_xformers`` and ``choose_flash`` return a ``Companion`` or ``None`` (after reporting why each
candidate was dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version

from resolver import compat
from resolver.candidates import TorchOption
from resolver.matrix_types import FlashRelease, Matrix, XformersRelease
from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX, PackageChoice, Target, spec_allows
from resolver.refusal import Refusal, joined, refusal
from resolver.report import Reporter
from resolver.request import Request

__all__ = ["Companion", "choose_xformers", "choose_flash", "flash_fits_gpus", "source_arch_list"]


@dataclass(frozen=True, slots=True)
class Companion:
    """A chosen xformers or flash-attn with what the choice rests on.

    ``off_pin``: built from source against a torch other than the one its wheels pin (allowed by the source tree's
    own requirement, but no release was tested that way), so ranked below any on-pin choice.
    """

    choice: PackageChoice
    notes: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    ptx: tuple[str, ...] = ()
    off_pin: bool = False


def source_arch_list(torch: TorchOption, target: Target, matrix: Matrix, package: str = "",
                     candidate: str = "") -> tuple[str | None, Refusal | None]:
    """Return (``TORCH_CUDA_ARCH_LIST`` for the target's GPUs, None) or (None, why nvcc cannot build for them:
    kind ``toolkit``)."""
    assert torch.cuda is not None
    nvcc = target.nvcc if target.nvcc is not None and target.nvcc.major == torch.cuda.major else torch.cuda
    minor = matrix.cuda_minor(nvcc)
    if minor is None:
        return None, refusal(package, candidate, "toolkit", "CUDA {nvcc} is not in the CUDA table", nvcc=nvcc)
    archs, unserved = compat.build_archs(target.capabilities, minor.nvcc_sms)
    if unserved is not None:
        return None, refusal(package, candidate, "toolkit", "nvcc {nvcc} cannot build code for {sm}", nvcc=nvcc,
                             sm=unserved.sm, compute_capability=unserved)
    return ";".join(str(a) for a in archs), None


def _blocked(problems: list[Refusal], blocker: Refusal) -> Refusal:
    """Return the blocker of a source build, after the reasons no wheel was taken (each a cause)."""
    out = blocker
    for p in reversed(problems):
        out = joined(p, out)
    return out


def _source_notes(torch: TorchOption, target: Target) -> tuple[str, ...]:
    if target.nvcc is None:
        assert torch.cuda is not None
        return (f"the source build needs nvcc {torch.cuda.major}.x (CUDA toolkit {torch.cuda}) and ninja",)
    return ()


# --- xformers -------------------------------------------------------------------------------------------------------


def _xformers_choice(x: XformersRelease, torch: TorchOption, target: Target,
                     matrix: Matrix) -> tuple[Companion | None, Refusal | None]:
    """Return the best way to get ``x`` beside ``torch``, or (None, why not)."""
    assert torch.cuda is not None
    version = str(x.version)
    pinned = spec_allows(x.torch, torch.release.version)
    if not pinned and not compat.xformers_off_pin_ok(x, torch.release.version):
        return None, refusal("xformers", version, "torch_pin", "requires torch{pins}", pins=x.torch, torch=torch.version)
    problems: list[Refusal] = []
    glibc = compat.wheel_refusal(matrix, "xformers", x.version, target)
    if glibc:
        problems.append(glibc)
    if (pinned and compat.xformers_platform_ok(x, target.platform) and compat.xformers_wheel_tags_ok(x, target.python)
            and not glibc):
        built = x.windows_cuda if target.platform == "win_amd64" else x.pypi_cuda
        missing, ptx = compat.coverage(x.arch, target.capabilities)
        ptx_notes = tuple(f"{cc.sm} runs xformers {version} only through PTX JIT" for cc in ptx)
        if built is not None and built.major == torch.cuda.major and not missing:
            return Companion(
                PackageChoice("xformers", version, "wheel", index_url=PYPI_SIMPLE, variant=f"cu{built.major}{built.minor}",
                              cuda=str(built), arch_list=x.arch.to_torch_arch_list(), ptx_fallback=bool(ptx)),
                ptx=ptx_notes,
            ), None
        if built is not None and built.major != torch.cuda.major:
            problems.append(refusal("xformers", version, "variant", "the PyPI wheel is a CUDA {built} build; torch {torch} "
                                    "is CUDA {cuda}", built=built, torch=torch.version, cuda=torch.cuda))
        elif missing:
            problems.append(refusal("xformers", version, "gpu_code", "the PyPI wheel has no code for {sms}",
                                    sms=", ".join(cc.sm for cc in missing),
                                    compute_capability=", ".join(str(cc) for cc in missing)))
        index_tag = compat.xformers_index_variant(x, torch.cuda)
        if index_tag is not None and not missing and target.platform != "linux_aarch64":
            # The PyPI build's arch list stands for every index build: xformers' wheels.yml sets one
            # TORCH_CUDA_ARCH_LIST per release, and CUDA 13 builds only add Blackwell targets (ANCHORS.md, xformers).
            unverified: tuple[str, ...] = ()
            if index_tag != torch.tag:
                unverified += (f"xformers {version}+{index_tag} loads beside torch {torch.version} (same CUDA major)",)
            return Companion(
                PackageChoice("xformers", f"{version}", "wheel", index_url=f"{PYTORCH_INDEX}/{index_tag}", variant=index_tag,
                              cuda=f"{index_tag[2:-1]}.{index_tag[-1]}", arch_list=x.arch.to_torch_arch_list(), ptx_fallback=bool(ptx)),
                unverified=unverified,
                ptx=ptx_notes,
            ), None
    # Source build: the wheel's torch pin does not bind a build from the sdist/tag; its source requirement does.
    if x.source_torch is not None and not spec_allows(x.source_torch, torch.release.version):
        return None, _blocked(problems, refusal("xformers", version, "torch_pin", "a source build needs torch{source_torch}",
                                                source_torch=x.source_torch, torch=torch.version))
    if x.source_min_cc is not None and any(cc < x.source_min_cc for cc in target.capabilities):
        low = [cc for cc in target.capabilities if cc < x.source_min_cc]
        return None, _blocked(problems, refusal(
            "xformers", version, "compute_capability", "its source does not compile for compute capability below {min_cc}",
            min_cc=x.source_min_cc, compute_capability=", ".join(str(cc) for cc in low)))
    nvcc = compat.nvcc_refusal(target.nvcc, "xformers", version, torch.version, torch.cuda)
    if nvcc is not None:
        return None, _blocked(problems, nvcc)
    arch, why = source_arch_list(torch, target, matrix, "xformers", version)
    if arch is None:
        assert why is not None
        return None, _blocked(problems, why)
    reason = "; ".join(p.text for p in problems) or "no prebuilt wheel for this torch/Python/platform"
    fmha_min = compat.xformers_fmha_min_cc(matrix)
    old_gpus = [cc for cc in target.capabilities if fmha_min is not None and cc < fmha_min]
    runtime: tuple[str, ...] = ()
    if old_gpus:
        runtime = (f"xformers builds and imports on compute capability {', '.join(map(str, old_gpus))}, but its "
                   f"memory_efficient_attention ops require {fmha_min} at run time: run `gpustack verify`",)
    return Companion(
        PackageChoice("xformers", version, "source", variant=torch.tag, cuda=str(torch.cuda), arch_list=arch,
                      url=None if x.sdist else compat.xformers_git_url(x, matrix),
                      build_env={"TORCH_CUDA_ARCH_LIST": arch, "FORCE_CUDA": "1"}),
        notes=(f"xformers {version} is built from source ({reason})",) + _source_notes(torch, target) + runtime
        + (() if pinned else (f"xformers {version} wheels pin torch{x.torch}; this build targets torch {torch.version}, "
                              f"which its source accepts (torch{x.source_torch})",)),
        off_pin=not pinned,
    ), None


def choose_xformers(torch: TorchOption, target: Target, matrix: Matrix, request: Request, reporter: Reporter) -> Companion | None:
    """Return the newest xformers that works with ``torch`` on every GPU of the target (wheel before build); with
    ``request.near``, the closest one, a wheel before a build."""
    assert request.xformers is not None
    fallback: Companion | None = None  # the newest off-pin build, used only when no release pins this torch
    build: Companion | None = None  # with ``near``: the closest on-pin build, used only when no wheel fits
    for x in request.order("xformers", matrix.xformers):
        if not spec_allows(request.xformers, x.version):
            continue
        if "xformers.components" in request.needs and not x.has_components:
            reporter.rejected(refusal("xformers", str(x.version), "needs",
                                      "has no xformers.components (fairseq's attention configs)",
                                      needs="xformers.components"))
            continue
        comp, why = _xformers_choice(x, torch, target, matrix)
        if comp is None:
            assert why is not None
            reporter.rejected(why, torch.version)
        elif not comp.off_pin:
            if not request.near or comp.choice.method == "wheel":
                return comp
            build = build or comp
        elif fallback is None:
            fallback = comp
    return build or fallback


# --- flash-attn -----------------------------------------------------------------------------------------------------


def flash_fits_gpus(f: FlashRelease, target: Target) -> bool:
    """Return whether flash-attn release ``f`` runs on every GPU of the target at all."""
    return compat.flash_gpu_refusal(f, target.capabilities) is None


def _flash_wheel(f: FlashRelease, torch: TorchOption, target: Target,
                 matrix: Matrix) -> tuple[PackageChoice | None, Refusal | None]:
    assert torch.cuda is not None
    version = str(f.version)
    if not any(w.platform == target.platform for w in f.wheels):
        return None, refusal("flash-attn", version, "platform",
                             "flash-attn {version} has no {platform} wheel on record (GitHub release assets)",
                             version=version, platform=target.platform)
    v = torch.release.version
    w = compat.flash_wheel(f, v, torch.cuda, torch.cxx11_abi, target.python, target.platform)
    if w is None:
        return None, refusal("flash-attn", version, "variant", "no prebuilt wheel for torch {torch_minor} + CUDA "
                             "{cuda_major} + cxx11abi {cxx11_abi} + Python {python}", torch_minor=torch.release.minor,
                             cuda_major=torch.cuda.major, cxx11_abi=bool(torch.cxx11_abi), python=target.python,
                             torch=torch.version)
    glibc = compat.flash_wheel_glibc_refusal(f, w, target)
    if glibc is not None:
        return None, glibc
    sass = compat.flash_wheel_sass(f, w)
    missing = [cc for cc in target.capabilities if sass.covers(cc) != "sass"]
    if missing:
        return None, refusal("flash-attn", version, "gpu_code", "the wheel for torch {torch_minor} has no code for {sms}",
                             torch_minor=torch.release.minor, sms=", ".join(c.sm for c in missing),
                             compute_capability=", ".join(str(c) for c in missing))
    url = compat.flash_wheel_url(f, v, torch.cuda, torch.cxx11_abi, target.python, target.platform, matrix)
    return PackageChoice("flash-attn", str(f.version), "wheel", url=url, variant=compat.flash_url_cuda_tag(f, torch.cuda),
                         cuda=str(w.cuda_build), arch_list=sass.to_torch_arch_list()), None


def _flash_choice(f: FlashRelease, torch: TorchOption, target: Target,
                  matrix: Matrix) -> tuple[Companion | None, Refusal | None]:
    assert torch.cuda is not None
    version = str(f.version)
    gpu = compat.flash_gpu_refusal(f, target.capabilities)
    if gpu is not None:
        return None, gpu
    if not spec_allows(f.requires_python, target.python + ".0"):
        return None, refusal("flash-attn", version, "python", "needs Python{requires_python}",
                             requires_python=f.requires_python, python=target.python)
    if f.min_torch is not None and torch.release.version < f.min_torch:
        return None, refusal("flash-attn", version, "torch_pin", "needs torch >= {min_torch}", min_torch=f.min_torch,
                             torch=torch.version)
    assets = (f"flash-attn {f.version}: which wheels its CI published is not confirmed upstream",) if f.wheels_unverified else ()
    unverified: tuple[str, ...] = _release_unverified(f) + assets
    wheel, why = _flash_wheel(f, torch, target, matrix)
    if wheel is not None:
        return Companion(wheel, unverified=unverified), None
    assert why is not None
    mismatch = compat.nvcc_refusal(target.nvcc, "flash-attn", version, torch.version, torch.cuda)
    if mismatch is not None:
        return None, joined(why, mismatch)
    nvcc = compat.build_nvcc(target, torch.cuda)  # setup.py reads the nvcc that builds, not torch's CUDA
    if f.setup_min_cuda is not None and nvcc < f.setup_min_cuda:
        whose = "the target's nvcc" if target.nvcc is not None else "nvcc (torch's CUDA)"
        return None, joined(why, refusal("flash-attn", version, "toolkit", "a source build needs nvcc >= {min_cuda} "
                                         "(its setup.py refuses older); {whose} is {nvcc}", min_cuda=f.setup_min_cuda,
                                         nvcc=nvcc, whose=whose, cuda=torch.cuda, torch=torch.version))
    built = compat.flash_build_archs(target.capabilities, matrix)
    if built is None:
        return None, joined(why, refusal("flash-attn", version, "gpu_code",
                                         "FLASH_ATTN_CUDA_ARCHS has no value for these GPUs",
                                         compute_capability=", ".join(str(c) for c in target.capabilities)))
    env = {"FLASH_ATTENTION_FORCE_BUILD": "TRUE"}
    if compat.flash_archs_env_honoured(f, matrix):
        env["FLASH_ATTN_CUDA_ARCHS"] = compat.flash_archs_value(built)  # older setup.py always builds sm_80 + sm_90
    job = compat.build_job("flash-attn", matrix)
    notes = (f"flash-attn {f.version} is built from source ({why.text}); expect 20+ minutes and about "
             f"{job.gib_per_job:g} GiB RAM per nvcc thread",)
    return Companion(
        PackageChoice("flash-attn", str(f.version), "source", variant=torch.tag, cuda=str(torch.cuda),
                      arch_list=compat.torch_arch_list(built), build_env=env),
        notes=notes + _source_notes(torch, target),
        unverified=_release_unverified(f),
    ), None


def _release_unverified(f: FlashRelease) -> tuple[str, ...]:
    """Return the unverified fact of a whole release row (``unverified = true``, docs/matrix.md), with its note."""
    return (f"flash-attn {f.version}: {f.note or 'release not confirmed upstream'}",) if f.unverified else ()


def choose_flash(torch: TorchOption, target: Target, matrix: Matrix, request: Request, reporter: Reporter) -> Companion | None:
    """Return the newest flash-attn 2 that works with ``torch`` on every GPU (prebuilt wheel before source build);
    with ``request.near``, the closest one, any wheel before a build. A release whose row is ``unverified`` ranks below
    every verified choice (docs/matrix.md, rule 1), and ``--verified-only`` refuses what rests on an unverified fact
    (kind ``unverified``, rule 3)."""
    assert request.flash_attn is not None
    # Post-releases count as the same release: 2.8.3 as a wheel beats a 30-minute build of 2.8.3.post2, and a wheel
    # whose publication is confirmed beats one that is not (2.8.3 over 2.8.3.post2's unverified release assets).
    # Ranks: 0 a wheel on verified facts (taken at once), 1 a wheel whose assets are unverified, 3 a source build of a
    # verified release, 4 anything else from a release whose row is unverified; with --prefer-wheels (asked), a
    # wheel of such a release, 2, goes before a build. Only a verified release stops the search at older ones.
    found: dict[int, Companion] = {}
    for f in request.order("flash-attn", matrix.flash_attn):
        ref = next((found[r] for r in (1, 3) if r in found), None)  # an unverified release never stops the search
        if ref is not None and not request.near and Version(f.version.base_version) < Version(Version(ref.choice.version).base_version):
            break
        if not spec_allows(request.flash_attn, f.version):
            continue
        if request.verified_only and f.unverified:
            reporter.rejected(refusal("flash-attn", str(f.version), "unverified", "{title} {version} relies on an "
                                      "unverified fact (--verified-only): {note}", title="flash-attn", version=f.version,
                                      note=f.note or "release not confirmed upstream"), torch.version)
            continue
        comp, why = _flash_choice(f, torch, target, matrix)
        if comp is None:
            assert why is not None
            reporter.rejected(why, torch.version)
            continue
        if request.verified_only and comp.unverified:
            reporter.rejected(refusal("flash-attn", str(f.version), "unverified", "{title} {version} relies on an "
                                      "unverified fact (--verified-only): {note}", title="flash-attn",
                                      version=f.version, note="; ".join(comp.unverified)), torch.version)
            continue
        wheel = comp.choice.method == "wheel"
        if f.unverified:
            rank = 2 if wheel and request.prefer_wheels else 4
        else:
            rank = (0 if not comp.unverified else 1) if wheel else 3
        if rank == 0:
            return comp
        found.setdefault(rank, comp)
    return found[min(found)] if found else None
