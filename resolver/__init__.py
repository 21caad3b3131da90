"""gpustack: choose, install and prove a GPU software stack (torch, CUDA build, xformers, flash-attn).

Stages: ``detect`` -> ``matrix`` -> ``solve`` -> ``plan`` -> install / build / lock / dockerfile / upgrade -> ``verify``.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
