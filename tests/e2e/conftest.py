"""Fixtures of the install end-to-end tests: two PEP 503 indexes served on 127.0.0.1, real venvs, real pip and uv.

``torchidx`` plays download.pytorch.org (fake torch 2.1.0+cu121 and 2.2.0), ``pypi`` plays PyPI (fake xformers
0.0.23 needing ``torch==2.1.0`` and 0.0.24 needing ``torch==2.2.0``). pip and uv are isolated from this machine's
configuration (``PIP_CONFIG_FILE=/dev/null``), and gpustack's cache lives in the test's own folder.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

import fakewheels  # noqa: E402
from _isolation import isolate_installers  # noqa: E402

ORIGINAL_ENV = dict(os.environ)


@dataclass(frozen=True)
class LocalIndex:
    """The served indexes' URLs and the folder holding the fixture wheels."""

    torch_url: str
    pypi_url: str
    wheels: Path


@pytest.fixture(scope="session")
def local_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    """Serve the two fixture indexes for the whole session."""
    root = tmp_path_factory.mktemp("index")
    wheels = root / "wheels"
    torch_files = [fakewheels.fake_torch(wheels, "2.1.0+cu121"), fakewheels.fake_torch(wheels, "2.2.0")]
    pypi_files = [fakewheels.fake_dependent(wheels, "xformers", "0.0.23", "torch==2.1.0"),
                  fakewheels.fake_dependent(wheels, "xformers", "0.0.24", "torch==2.2.0")]
    fakewheels.write_index(root / "torchidx", torch_files)
    fakewheels.write_index(root / "pypi", pypi_files)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(fakewheels.QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    yield LocalIndex(f"http://127.0.0.1:{port}/torchidx/simple", f"http://127.0.0.1:{port}/pypi/simple", wheels)
    server.shutdown()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return gpustack's cache folder for this test; pip and uv ignore this machine's configuration."""
    isolate_installers(monkeypatch)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    shared = tmp_path_factory.getbasetemp() / "tool-caches"
    monkeypatch.setenv("PIP_CACHE_DIR", str(shared / "pip"))
    monkeypatch.setenv("UV_CACHE_DIR", str(shared / "uv"))
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "gpustack-cache"))
    return tmp_path / "gpustack-cache"


@pytest.fixture(scope="session")
def template_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a venv with pip and setuptools, made once; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "wheel"], check=True, env=ORIGINAL_ENV)
    return path


@pytest.fixture
def venv(template_venv: Path, tmp_path: Path) -> Path:
    """Return the python of a fresh venv (a copy of the template: ``python -m pip`` works in it)."""
    dest = tmp_path / "venv"
    shutil.copytree(template_venv, dest, symlinks=True)
    return dest / "bin" / "python"


def pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the venv's pip (no gpustack involved) and return the finished process; raise on failure."""
    return subprocess.run([str(python), "-m", "pip", *args], check=True, capture_output=True, text=True)


def freeze(python: Path) -> list[str]:
    """Return ``pip freeze --all`` of the venv, sorted."""
    return sorted(pip(python, "freeze", "--all").stdout.split())


TORCH_CUDA = "2.14.1"


@pytest.fixture(scope="session")
def torch_cuda_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the python of a venv holding the CUDA 13 build of torch 2.14.1 (from this machine's local indexes),
    made once per session; ``GPUSTACK_TEST_TORCH_VENV=DIR`` reuses (or creates) one across sessions."""
    where = os.environ.get("GPUSTACK_TEST_TORCH_VENV")
    path = Path(where) if where else tmp_path_factory.mktemp("torch-cuda") / "venv"
    python = path / "bin" / "python"
    probe = [str(python), "-c", f"import importlib.metadata as m; assert m.version('torch') == {TORCH_CUDA!r}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={TORCH_CUDA}", "setuptools", "wheel"],
                          env=ORIGINAL_ENV, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"torch {TORCH_CUDA} is not installable here: {done.stderr[-300:]}")
    return python


@dataclass(frozen=True)
class TwoIndexes:
    """A loopback copy of the real layout (INDEXES.md): ``torch_url`` plays ``download.pytorch.org/whl/cu121``,
    ``pypi_url`` plays ``pypi.org/simple``; ``root`` serves both (``/whl/...``, ``/simple/...``)."""

    base: str
    torch_url: str
    pypi_url: str
    wheels: Path
    root: Path


def _two_index_files(wheels: Path) -> tuple[list[Path], list[Path]]:
    """Return the files of the PyTorch-style index and of the PyPI-style one.

    PyTorch /whl/cu121: torch 2.1.0+cu121 and 2.2.0+cu121, xformers 0.0.23+cu121, torchvision 0.16.0+cu121, and
    an old mirror of torch's dependency typing-extensions (4.4.0, below what torch needs: a first-index resolver that
    only looks there for it fails). PyPI: the same public versions built for CUDA 12.4 (dist version without label,
    ``torch.__version__`` with it, as PyPI's CUDA torch), newer releases (torch 2.3.0, xformers 0.0.24,
    torchvision 0.17.0), typing-extensions 4.4.0 and 4.12.2, and fake-einops (a source build's runtime dependency).
    """
    te = ["typing-extensions>=4.8.0"]
    torch_idx = [
        fakewheels.fake_torch(wheels / "cu121", "2.1.0+cu121", "12.1", requires=te),
        fakewheels.fake_torch(wheels / "cu121", "2.2.0+cu121", "12.1", requires=te),
        fakewheels.fake_cuda_package(wheels / "cu121", "xformers", "0.0.23+cu121", "12.1", ["torch==2.1.0"]),
        fakewheels.fake_cuda_package(wheels / "cu121", "torchvision", "0.16.0+cu121", "12.1", ["torch==2.1.0"]),
        fakewheels.make_wheel(wheels / "cu121", "typing-extensions", "4.4.0"),
    ]
    pypi = [
        fakewheels.fake_torch(wheels / "pypi", "2.1.0", "12.4", requires=te, version_py="2.1.0+cu124"),
        fakewheels.fake_torch(wheels / "pypi", "2.2.0", "12.4", requires=te, version_py="2.2.0+cu124"),
        fakewheels.fake_torch(wheels / "pypi", "2.3.0", "12.4", requires=te, version_py="2.3.0+cu124"),
        fakewheels.fake_cuda_package(wheels / "pypi", "xformers", "0.0.23", "12.4", ["torch==2.1.0"]),
        fakewheels.fake_cuda_package(wheels / "pypi", "xformers", "0.0.24", "12.4", ["torch==2.2.0"]),
        fakewheels.fake_cuda_package(wheels / "pypi", "torchvision", "0.16.0", "12.4", ["torch==2.1.0"]),
        fakewheels.fake_cuda_package(wheels / "pypi", "torchvision", "0.17.0", "12.4", ["torch==2.2.0"]),
        fakewheels.make_wheel(wheels / "pypi", "typing-extensions", "4.4.0"),
        fakewheels.make_wheel(wheels / "pypi", "typing-extensions", "4.12.2"),
        fakewheels.make_wheel(wheels / "pypi", "fake-einops", "0.7.0"),
    ]
    return torch_idx, pypi


class Server:
    """A threaded HTTP server of one folder on 127.0.0.1 that can be stopped (a dead index) and started again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                       functools.partial(fakewheels.QuietHandler, directory=str(self.root)))
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def write_two_index(root: Path) -> None:
    """Lay the two indexes out under ``root`` as served: the PyTorch-style ``whl/cu121`` and PyPI's ``simple``
    (with its ``files``), the wheels in ``root/wheels``."""
    torch_idx, pypi = _two_index_files(root / "wheels")
    fakewheels.write_flat_index(root / "whl" / "cu121", torch_idx)
    fakewheels.write_index(root / "pypi-files", pypi)
    shutil.move(str(root / "pypi-files" / "simple"), str(root / "simple"))
    shutil.move(str(root / "pypi-files" / "files"), str(root / "files"))


@pytest.fixture(scope="session")
def two_index_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TwoIndexes, Server]]:
    root = tmp_path_factory.mktemp("two-index")
    write_two_index(root)
    server = Server(root)
    base = f"http://127.0.0.1:{server.port}"
    yield TwoIndexes(base, f"{base}/whl/cu121", f"{base}/simple", root / "wheels", root), server
    server.stop()


@pytest.fixture
def two_index(two_index_server: tuple[TwoIndexes, Server]) -> TwoIndexes:
    """Return the served two-index layout (started again if a test stopped it)."""
    idx, server = two_index_server
    if server._server is None:
        server.start()
    return idx


def two_index_plan_file(tmp_path: Path) -> Path:
    """Write and return a plan file as ``resolver.plan`` writes it for torch 2.1.0+cu121 and xformers 0.0.23 from the
    PyTorch index (download.pytorch.org/whl/cu121, pypi.org beside it): the install's mirrors move it to the
    two-index layout."""
    import json

    from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX, PackageChoice, Plan, Stack, Step, Target

    pin = "torch==2.1.0+cu121"
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    torch_idx = f"{PYTORCH_INDEX}/cu121"
    plan = Plan(Stack(target, (PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=torch_idx, variant="cu121",
                                             cuda="12.1"),
                               PackageChoice("xformers", "0.0.23", "wheel", index_url=torch_idx, variant="cu121"))),
                (Step("install", "torch", pin, index_url=torch_idx, extra_index_urls=(PYPI_SIMPLE,)),
                 Step("install", "xformers", "xformers==0.0.23", index_url=torch_idx, extra_index_urls=(PYPI_SIMPLE,),
                      constraints=(pin,))))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    return path
