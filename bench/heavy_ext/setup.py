"""A benchmark-only CUDA extension whose build time is mostly device code (like xformers or flash-attn, unlike the
tiny test fixture): unrolled template kernels instantiated many times, split over four files so ninja can use every
cores. bench/bench_install.py builds it for one architecture and for torch's own list."""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name="gpustack-heavy-ext-bench",
    version="0.1.0",
    packages=["heavy_ext"],
    ext_modules=[CUDAExtension("heavy_ext._C", ["csrc/binding.cpp", "csrc/heavy_a.cu", "csrc/heavy_b.cu",
                                                          "csrc/heavy_c.cu", "csrc/heavy_d.cu"])],
    cmdclass={"build_ext": BuildExtension},
)
