"""SIGTERM and SIGHUP outside an install's transaction end a command as Ctrl-C does: its cleanup runs, one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_lock_leaves_no_temporary_folder_and_says_so(tmp_path: Path, sig: int) -> None:
    # An index that accepts the connection and never answers: uv waits on it while the lock's folder exists.
    # SIGTERM/SIGHUP used to end gpustack on the spot, leaving /tmp/gpustack-lock-*/request/pyproject.toml.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(TMPDIR=str(tmp), PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1",
               GPUSTACK_CACHE_DIR=str(tmp_path / "cache"), UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    child = subprocess.Popen([sys.executable, "-m", "resolver", "lock", "--cpu", "torch==2.13.0", "--torch-index-url",
                              f"{url}/whl", "--index-url", f"{url}/simple", "-o", str(tmp_path / "pylock.x.toml")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(tmp.glob("gpustack-lock-*")) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(tmp.glob("gpustack-lock-*")), child.communicate(timeout=60)[0]
        time.sleep(0.5)
        child.send_signal(sig)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
        silent.close()
    assert child.returncode == 128 + sig, out
    assert out.strip().splitlines()[-1] == f"gpustack: interrupted ({signal.Signals(sig).name})", out
    assert list(tmp.iterdir()) == [] and not (tmp_path / "pylock.x.toml").exists()
