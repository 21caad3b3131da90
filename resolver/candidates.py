"""The binaries a target could use: torch builds per platform, xformers and flash-attn wheels or builds.

Pure helpers for ``resolver.solve``: ``torch_options`` returns candidates with the facts they rest on; whether one
fits a GPU or a driver is ``resolver.compat``'s answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version

from resolver.compat import torch_cxx11_abi, torch_pin
from resolver.matrix_types import Matrix, TorchRelease
from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX, ArchList, Target

__all__ = ["TorchOption", "torch_options"]


@dataclass(frozen=True, slots=True)
class TorchOption:
    """One installable torch build: release x CUDA variant x where it comes from."""

    release: TorchRelease
    tag: str  # cu121 / cpu
    cuda: Version | None
    arch: ArchList
    index_url: str
    from_pypi: bool
    cxx11_abi: bool | None
    unverified: tuple[str, ...]  # facts about this build that upstream did not confirm (ranked below verified)
    assumptions: tuple[str, ...] = ()  # unconfirmed facts shared by every build on the platform (reported, not ranked)

    @property
    def version(self) -> str:
        """Return torch's version as ``torch.__version__`` prints it (``2.1.0+cu121``)."""
        return f"{self.release.version}+{self.tag}"

    def is_installed(self, installed: str | None) -> bool:
        """Return whether ``installed`` (``torch.__version__``, or a PyPI dist version without a tag) is this build."""
        if not installed:
            return False
        if "+" in installed:
            return installed == self.version
        return self.from_pypi and installed == str(self.release.version)

    @property
    def requirement(self) -> str:
        """Return the pin pip needs (``compat.torch_pin``)."""
        return torch_pin(self.version, PYPI_SIMPLE if self.from_pypi else self.index_url)


def torch_options(rel: TorchRelease, target: Target, matrix: Matrix) -> list[TorchOption]:
    """Return the builds of ``rel`` for the target's platform, highest CUDA first (CPU build for a CPU target)."""
    plat = target.platform
    abi = torch_cxx11_abi(rel, plat, matrix)
    if target.is_cpu:
        if rel.pypi_cuda.get(plat) == "cpu":
            return [TorchOption(rel, "cpu", None, ArchList(), PYPI_SIMPLE, True, abi, ())]
        return [TorchOption(rel, "cpu", None, ArchList(), f"{PYTORCH_INDEX}/cpu", False, abi, ())]
    out: list[TorchOption] = []
    for v in rel.variants:
        unverified = [f"torch {rel.version}+{v.tag}: {v.note or 'variant not confirmed upstream'}"] if v.unverified else []
        if plat == "linux_x86_64":
            if rel.pypi_cuda[plat] == v.tag:
                out.append(TorchOption(rel, v.tag, v.cuda, rel.pypi_arch[plat], PYPI_SIMPLE, True, abi, tuple(unverified)))
            else:
                out.append(TorchOption(rel, v.tag, v.cuda, v.arch, f"{PYTORCH_INDEX}/{v.tag}", False, abi, tuple(unverified)))
        elif plat == "linux_aarch64":
            if rel.pypi_cuda[plat] == v.tag and plat in rel.pypi_arch:
                out.append(TorchOption(rel, v.tag, v.cuda, rel.pypi_arch[plat], PYPI_SIMPLE, True, abi, tuple(unverified)))
            elif v.arch_aarch64 is not None:
                assumed = (f"torch {rel.version}+{v.tag} aarch64 arch list comes from PyTorch build PRs and RFC tables, not the wheel",)
                out.append(TorchOption(rel, v.tag, v.cuda, v.arch_aarch64, f"{PYTORCH_INDEX}/{v.tag}", False, abi,
                                       tuple(unverified), assumed))
        else:  # win_amd64: PyPI serves CPU builds only; CUDA builds come from the PyTorch index
            assumed = (f"torch {rel.version}+{v.tag} Windows wheel assumed to match the Linux arch list",)
            out.append(TorchOption(rel, v.tag, v.cuda, v.arch, f"{PYTORCH_INDEX}/{v.tag}", False, abi,
                                   tuple(unverified), assumed))
    return out
