"""Render a plan as a Dockerfile: ``render(plan, matrix) -> str``. Pure: no template engine, no files, no detection.

The final stage starts from the ``nvidia/cuda`` runtime image of torch's CUDA (``matrices/docker.toml``); when the
plan builds packages from source, a ``devel`` stage builds their wheels first and the final stage installs them.
Image builds run without a GPU, so everything a build needs (arch list, ``FORCE_CUDA``, ``MAX_JOBS``) is written
into the file, never detected (docs/dockerfile.md).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from packaging.version import Version

from resolver import compat
from resolver.errors import BadInput, NoCompatibleStack
from resolver.matrix_types import DockerImage, Matrix
from resolver.models import GO_ARCH, Plan, Step, Target, format_driver, marker_environment
from resolver.refusal import Change, advice, alternative, refusal

if TYPE_CHECKING:
    from resolver.request import Request

__all__ = ["render", "refuse_platform", "base_image", "UV_IMAGE", "CPU_IMAGE"]

# uv installs the target's exact Python (python-build-standalone) on any base image; pinned, like every tag here.
# https://docs.astral.sh/uv/guides/integration/docker/ ("COPY --from=ghcr.io/astral-sh/uv:<version> /uv /bin/")
UV_IMAGE = "ghcr.io/astral-sh/uv:0.13.9"
CPU_IMAGE = "ubuntu:22.04"  # a CPU stack needs no CUDA user space; torch's CPU wheels need glibc >= 2.28
VENV = "/opt/venv"
# torch.utils.cpp_extension builds in parallel only with ninja (it falls back to a slow serial build without it).
NINJA = "ninja==1.13.2"  # newest on https://pypi.org/project/ninja/ when written


def base_image(cuda: str | None, matrix: Matrix) -> tuple[DockerImage | None, str]:
    """Return the ``nvidia/cuda`` image for CUDA ``cuda`` and a comment saying why it was chosen.

    The image of the same CUDA minor wins; else the nearest newer minor of the same major (CUDA minor-version
    compatibility); a ``removed`` image is never used. ``None`` for a CPU stack. Raises ``NoCompatibleStack``.
    """
    if cuda is None:
        return None, f"CPU stack: {CPU_IMAGE}, no CUDA user space needed"
    want = Version(cuda)
    usable = sorted((i for i in matrix.docker if not i.removed), key=lambda i: Version(i.version), reverse=True)
    exact = [i for i in usable if (i.cuda.major, i.cuda.minor) == (want.major, want.minor)]
    if exact:
        img = exact[0]
        why = f"CUDA {img.cuda} image = torch's CUDA {want.major}.{want.minor}"
    else:
        newer = [i for i in usable if i.cuda.major == want.major and i.cuda > want]
        if not newer:
            removed = [i.version for i in matrix.docker if i.removed and i.cuda.major == want.major]
            gone = f" ({', '.join(removed)} removed from Docker Hub)" if removed else ""
            raise NoCompatibleStack(
                [refusal("nvidia/cuda", f"{want.major}.{want.minor}", "image",
                         "no nvidia/cuda image for CUDA {cuda} or a newer {cuda_major}.x in matrices/docker.toml{gone}",
                         cuda=f"{want.major}.{want.minor}", cuda_major=want.major, gone=gone, removed=", ".join(removed))],
                # the torch build that has an image is named where the request is known (with_image_alternative)
                [advice("add the image row to matrices/docker.toml")],
            )
        img = min(newer, key=lambda i: (i.cuda, -Version(i.version).micro))
        why = (f"no CUDA {want.major}.{want.minor} image; CUDA {img.cuda} is the nearest newer {want.major}.x "
               f"(minor-version compatible with torch's CUDA {want.major}.{want.minor} runtime)")
    if img.unverified:
        why += "; tag existence unverified"
    return img, why


def with_image_alternative(exc: NoCompatibleStack, target: Target, matrix: Matrix,
                           request: Request) -> NoCompatibleStack:
    """Return ``exc`` (no ``nvidia/cuda`` image for the stack's CUDA) with what would work instead, solved: the
    newest torch build whose CUDA has an image and with which the whole request solves on the target (builds the
    request's torch bound allows first), and the matrix row to add."""
    from packaging.specifiers import SpecifierSet

    from resolver.candidates import torch_options
    from resolver.explain import solves
    from resolver.models import spec_allows

    def has_image(cuda: Version) -> bool:
        try:
            base_image(str(cuda), matrix)
        except NoCompatibleStack:
            return False
        return True

    tried = 0
    failed: set[tuple[Version, str]] = set()  # the second pass meets the first pass's builds again: solved once
    for bound in (request.torch, SpecifierSet()):
        for rel in matrix.torch:
            if not spec_allows(bound, rel.version) or tried > 40:
                continue
            for opt in torch_options(rel, target, matrix):
                if opt.cuda is None or not has_image(opt.cuda):
                    continue
                tried += 1
                if (rel.version, opt.tag) in failed:
                    continue
                # A requested profile's torch bound stays (its application needs it): ``refusal.apply`` narrows it.
                change = Change(request={"torch": f"=={rel.version}", "torch_variant": opt.tag})
                failed.add((rel.version, opt.tag))
                if solves(target, matrix, request, change):
                    alt = alternative("torch=={version}: CUDA {cuda} has an nvidia/cuda image and the whole request "
                                      "solves", change, version=opt.version, cuda=opt.cuda)
                    return NoCompatibleStack(exc.refusals, [alt, *exc.alternatives])
    return exc


def _q(value: str) -> str:
    """Return ``value`` quoted for a shell word or an ``ENV`` value."""
    return shlex.quote(value) if any(c in value for c in " ;&|<>()$'\"*?[]#~=%@+") else value


def _index_args(step: Step) -> list[str]:
    """Return pip's ``--index-url`` / ``--extra-index-url`` arguments of ``step``'s indexes."""
    if not step.index_url:
        return []
    return ["--index-url", step.index_url, *(a for u in step.extra_index_urls for a in ("--extra-index-url", u))]


def _pip_install(step: Step, extra: Iterable[str] = ()) -> str:
    """Return the shell command of one install step: its indexes, its requirement and the pins it must hold."""
    args = ["pip", "install", "--no-cache-dir"]
    if step.no_deps:
        args.append("--no-deps")
    if not step.url:
        args += _index_args(step)
    # a wheel the plan takes by URL (flash-attn's GitHub release asset) is installed from that URL, as install does
    args.append(f"{step.package} @ {step.url}" if step.url and " @ " not in step.requirement else step.requirement)
    args += list(step.constraints) + list(extra)
    return " ".join(_q(a) for a in args)


def _install_built(step: Step) -> str:
    """Return the shell command installing the wheel a build step made, as ``gpustack install`` installs it: with
    the dependencies the wheel declares (flash-attn's einops, xformers' numpy), from the step's index, and the
    step's pins (torch's exact build) held on the same command line so that none of them can swap torch."""
    args = ["pip", "install", "--no-cache-dir", *_index_args(step)]
    wheel = f"/tmp/wheels/{re.sub(r'[-_.]+', '_', step.package)}-*.whl"  # the wheel file name's escaped project name
    return " ".join([*(_q(a) for a in args), wheel, *(_q(c) for c in step.constraints)])


def _run(commands: list[str]) -> list[str]:
    """Return one ``RUN`` instruction chaining ``commands`` (one layer, one line each), or nothing."""
    return ["RUN " + " \\\n    && ".join(commands)] if commands else []


def _env(env: Mapping[str, str]) -> str:
    return "ENV " + " ".join(f"{k}={_q(v)}" for k, v in sorted(env.items()))


# Where uv downloads a Python the image lacks from; UV_PYTHON_INSTALL_MIRROR replaces this prefix
# (https://docs.astral.sh/uv/reference/environment/). Recent uv tries Astral's copy of it first, then GitHub.
PYTHON_DOWNLOADS = "https://github.com/astral-sh/python-build-standalone/releases/download"


def _python_setup(python: str, first: bool = True) -> list[str]:
    """Return the lines that make the stage's venv: uv takes the image's own Python ``X.Y`` when it has one (the
    nvidia/cuda and ubuntu images do not) and otherwise downloads it, so a firewalled build needs a mirror of the
    downloads: the build argument ``UV_PYTHON_INSTALL_MIRROR``, declared in every stage that runs uv (an ``ARG``
    without a default is not set at all unless given, so uv's default applies)."""
    said = ([f"# uv uses the image's Python {python} if it has one, else downloads it (python-build-standalone). "
             "Behind a firewall pass",
             f"# --build-arg UV_PYTHON_INSTALL_MIRROR=URL, a mirror of {PYTHON_DOWNLOADS}"] if first
            else ["# UV_PYTHON_INSTALL_MIRROR: as in the first stage"])
    return [
        "COPY --from=uv /uv /usr/local/bin/uv",
        *said,
        "ARG UV_PYTHON_INSTALL_MIRROR",
        "ENV UV_PYTHON_INSTALL_DIR=/opt/python",
        f"RUN uv venv --seed --python {python} {VENV}",
        f"ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH",
    ]


def _machine(target: Target) -> tuple[str, str]:
    """Return the target's machine as ``uname -m`` prints it and as ``docker build --platform`` spells it."""
    return marker_environment(target)["platform_machine"], f"linux/{GO_ARCH[target.platform]}"


def build_command(target: Target, file_name: str | None = None) -> str:
    """Return the command that builds the image for the target's platform from the folder holding its Dockerfile:
    ``-f NAME`` where the file is not named ``Dockerfile`` (Docker reads ./Dockerfile unless told)."""
    if not file_name or file_name == "Dockerfile":
        named = ""
    else:  # the name goes into a shell echo and a comment: a name needing quotes is said, not spelled
        named = f" -f {file_name}" if re.fullmatch(r"[A-Za-z0-9._+-]+", file_name) else " -f <this file>"
    return f"docker buildx build --platform {_machine(target)[1]}{named} ."


def _arch_check(target: Target, file_name: str | None = None) -> str:
    """Return the ``RUN`` that stops a build made for another architecture: Docker builds for the builder's own
    unless told (``--platform``), and pip would then fill an amd64 image with x86 wheels under an arm64 label. Not
    ``FROM --platform``, which hadolint's DL3029 forbids: the image is still built with the platform the header
    names, and this line makes a build that forgot it fail at once, with the command that fixes it."""
    machine, docker = _machine(target)
    return (f'RUN [ "$(uname -m)" = {machine} ] || {{ echo "this image is for {docker}, not $(uname -m): '
            f'build it with {build_command(target, file_name).removesuffix(" .")}" >&2; exit 1; }}')


def _header(plan: Plan, why: str, matrix: Matrix, file_name: str | None = None) -> list[str]:
    stack = plan.stack
    t = stack.target
    torch = stack.get("torch")
    lines = ["# syntax=docker/dockerfile:1", "# Made by `gpustack dockerfile` for this target:"]
    if t.gpus:
        lines.append("#   GPUs: " + ", ".join(f"{g.name} (compute capability {g.compute_capability})" for g in t.gpus))
    else:
        lines.append("#   no GPU (CPU stack)")
    if torch is not None and torch.cuda:
        floor = compat.driver_floor(torch.cuda, matrix, t.platform)
        lines.append(f"#   host driver >= {format_driver(floor) if floor else 'unknown'} (CUDA {torch.cuda})")
    lines.append(f"#   Python {t.python}, {t.platform}")
    for p in stack.packages:
        how = "built from source" if p.method == "source" else "wheel"
        archs = f", archs {p.arch_list}" if p.arch_list else ""
        lines.append(f"#   {p.name} {p.version} ({how}{archs})")
    lines.append(f"# Base image: {why}.")
    lines.append("# The image builds without a GPU: nothing here is detected at build time.")
    docker = _machine(t)[1]
    lines.append(f"# Build it for {docker} on any host: {build_command(t, file_name)}")
    lines.append("# (a build for another architecture stops at its first RUN)")
    for note in (*stack.notes, *plan.notes):
        lines.append(f"# note: {note}")
    return lines


def _max_jobs_arg(plan: Plan, step: Step, matrix: Matrix) -> tuple[str, list[str]]:
    """Return the build argument naming a build's ``MAX_JOBS`` and its lines: a comment saying whose machine the
    default is sized for (the plan's, i.e. the machine gpustack ran on, by ``compat.max_jobs``) and the ``ARG``."""
    t = plan.stack.target
    default = step.env.get("MAX_JOBS") or str(compat.max_jobs(step.package, matrix, t.cpu_count, t.memory_gib))
    arg = re.sub(r"[^A-Z0-9]", "_", step.package.upper()) + "_MAX_JOBS"
    per_job = compat.job_gib(step.package, matrix, int(step.env.get("NVCC_THREADS", "0")) or None)
    machine = (f"{t.cpu_count} cores, {t.memory_gib:.0f} GiB free RAM" if t.cpu_count and t.memory_gib is not None
               else "cores and RAM unknown")
    return arg, [f"# MAX_JOBS of the {step.package} build is sized for the build machine ({machine}; about "
                 f"{per_job:g} GiB per job): on another one pass --build-arg {arg}=N",
                 f"ARG {arg}={default}"]


def refuse_platform(platform: str) -> None:
    """Raise ``BadInput`` for a target no Linux image can serve (a Windows target): no Linux image labelled Windows."""
    if platform.startswith("win"):
        raise BadInput(f"dockerfile --platform {platform}: gpustack writes Linux (nvidia/cuda) images only; "
                       "plan a linux_x86_64 or linux_aarch64 target, or use `gpustack plan` for Windows")


def image_glibc(plan: Plan, matrix: Matrix) -> tuple[Version, str] | None:
    """Return the glibc of the image ``render`` builds ``plan`` on, and that image's name: its Ubuntu release's
    (``Matrix.os_glibc``: platforms.toml); ``None`` when the image or its Ubuntu's glibc is not known (or there is no
    image)."""
    torch = plan.stack.get("torch")
    try:
        img, _ = base_image(torch.cuda if torch is not None else None, matrix)
    except NoCompatibleStack:
        return None
    ubuntu, name = (img.ubuntu, img.runtime) if img is not None else (CPU_IMAGE.split(":")[1], CPU_IMAGE)
    glibc = matrix.os_glibc(f"ubuntu-{ubuntu}") if ubuntu else None
    return (glibc, name) if glibc is not None else None


def render(plan: Plan, matrix: Matrix, *, header: Sequence[str] = (), final: Sequence[str] = (),
           index_url: str | None = None, file_name: str | None = None) -> str:
    """Return the Dockerfile text that installs ``plan`` on the ``nvidia/cuda`` image of torch's CUDA.

    ``header`` adds comment lines after the target's; ``final`` adds instructions at the end of the last stage, in
    place of ``CMD ["python"]`` when it holds a ``CMD`` (``resolver.dockerfile_fleet`` uses both). ``index_url`` is
    the PyPI mirror (``installers.pypi_mirror``; the plan's steps already name it, ``installers.with_mirrors``): each
    stage sets it as pip's and uv's default index, so that what no step names (uv's seed packages, ninja, a built
    wheel's dependencies) comes from it too. ``file_name``: the name it is written under, which the build command
    it prints names (``build_command``). Raises ``BadInput`` for a Windows target (``refuse_platform``).
    """
    refuse_platform(plan.stack.target.platform)
    stack = plan.stack
    torch = stack.get("torch")
    img, why = base_image(torch.cuda if torch is not None else None, matrix)
    runtime = img.runtime if img is not None else CPU_IMAGE
    devel = img.devel if img is not None else CPU_IMAGE
    python = ".".join(stack.target.python.split(".")[:2])
    installs = [s for s in plan.steps if s.action == "install"]
    builds = [s for s in plan.steps if s.action == "build"]
    out = _header(plan, why, matrix, file_name) + [f"# {line}" if line else "#" for line in header]
    out += ["", f"FROM {UV_IMAGE} AS uv"]
    mirror = [_env({"PIP_INDEX_URL": index_url, "UV_DEFAULT_INDEX": index_url})] if index_url else []
    if builds:
        out += ["", f"FROM {devel} AS build", *mirror, _arch_check(stack.target, file_name), "# hadolint ignore=DL3008",
                "RUN apt-get update && apt-get install -y --no-install-recommends build-essential git "
                "&& rm -rf /var/lib/apt/lists/*"]
        out += _python_setup(python)
        out += _run([_pip_install(s) for s in installs if s.package == "torch"]
                    + [f"pip install --no-cache-dir {NINJA}"])
        for s in builds:
            env = dict(s.env)  # the plan's: arch list and FORCE_CUDA included (resolver.plan)
            arg, lines = _max_jobs_arg(plan, s, matrix)
            out += lines
            env.pop("MAX_JOBS", None)
            out.append(_env(env) + f" MAX_JOBS=${{{arg}}}")
            args = ["pip", "wheel", "--no-cache-dir", "--no-deps", "--no-build-isolation", "--wheel-dir", "/wheels",
                    s.requirement]
            out.append("RUN " + " ".join(_q(a) for a in args))
    out += ["", f"FROM {runtime}", *mirror, _arch_check(stack.target, file_name)]
    label = f"{stack.target.platform} py{python} " + " ".join(f"{p.name}=={p.version}" for p in stack.packages)
    out.append(f"LABEL io.gpustack.target={_q(label.strip())}")
    out += _python_setup(python, first=not builds)
    out += _run([_pip_install(s) for s in installs])
    if builds:
        out += ["COPY --from=build /wheels /tmp/wheels"]
        out += _run([*(_install_built(s) for s in builds), "rm -rf /tmp/wheels"])
    out += list(final)
    if not any(line.startswith("CMD ") for line in final):
        out += ['CMD ["python"]']
    return "\n".join(out) + "\n"
