"""What the GPU tests share: whether this machine has an NVIDIA GPU to run them on."""

from __future__ import annotations

import shutil
import subprocess


def gpu_present() -> bool:
    """Returns whether ``nvidia-smi -L`` lists at least one GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "GPU" in done.stdout
