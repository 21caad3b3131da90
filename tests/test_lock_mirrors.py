"""``lock`` and ``dockerfile`` take the mirrors ``install`` takes (``--torch-index-url`` / ``$GPUSTACK_TORCH_INDEX_URL``
for download.pytorch.org/whl, ``--index-url`` for PyPI), through the same code (``installers.torch_mirror``,
``pypi_mirror``, ``with_mirrors``). The mirrors are real indexes served on 127.0.0.1 (laid out as
download.pytorch.org's ``/whl/cpu`` and PyPI's ``/simple``), and the lock is resolved by the real uv: nothing in the
lock may point anywhere else, and every file keeps the sha256 the mirror publishes."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

import fakewheels  # noqa: E402
from resolver.cli import main  # noqa: E402
from resolver.lock import loads  # noqa: E402
from _isolation import isolate_installers

TARGET = ["--cpu", "--python", "3.11", "--platform", "linux_x86_64"]


@dataclass(frozen=True)
class Mirrors:
    root: Path
    torch: str  # mirror of download.pytorch.org/whl (served: <torch>/cpu/torch/)
    pypi: str  # mirror of pypi.org/simple
    sha: dict[str, str]  # file name -> sha256


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirrors]:
    root = tmp_path_factory.mktemp("mirrors")
    wheels = root / "wheels"
    torch = fakewheels.fake_torch(wheels, "2.13.0+cpu", cuda=None, requires=["filelock"])
    filelock = fakewheels.make_wheel(wheels, "filelock", "3.16.1")
    # PyPI's torch 2.11.0 (its CUDA 13.0 build), einops, and flash-attn's sdist (locked for a source build, never built)
    pypi_torch = fakewheels.fake_torch(wheels / "pypi", "2.11.0", cuda="13.0", version_py="2.11.0+cu130")
    einops = fakewheels.make_wheel(wheels, "einops", "0.8.1")
    # PyPI's torch 2.10.0 (its CUDA 12.8 build), numpy, and xformers' sdist (a V100 builds xformers 0.0.35)
    torch210 = fakewheels.fake_torch(wheels / "pypi", "2.10.0", cuda="12.8", version_py="2.10.0+cu128")
    numpy = fakewheels.make_wheel(wheels, "numpy", "2.2.6")
    sdists = [wheels / "flash_attn-2.8.3.post2.tar.gz", wheels / "xformers-0.0.35.tar.gz"]
    for sdist in sdists:
        sdist.write_bytes(b"not built by a lock")
    fakewheels.write_flat_index(root / "torch" / "cpu", [torch])
    fakewheels.write_index(root / "pypi", [filelock, pypi_torch, torch210, einops, numpy, *sdists])
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (torch, filelock)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(fakewheels.QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield Mirrors(root, f"{base}/torch", f"{base}/pypi/simple", sha)
    server.shutdown()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_installers(monkeypatch, also=lambda name: name == "GPUSTACK_TORCH_INDEX_URL")
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))


def _urls(text: str) -> list[str]:
    """Every index and file URL a lock names."""
    data = tomllib.loads(text)
    out = []
    for p in data.get("packages", []):
        out += [p["index"], *(w["url"] for w in p.get("wheels", []))]
    out += [m.get("index", "") for m in data["tool"]["gpustack"].get("missing", [])]
    return out


@pytest.mark.parametrize("how", ["options", "environment"])
def test_lock_resolves_from_the_mirrors_and_names_nothing_else(mirrors: Mirrors, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    out = tmp_path / "pylock.toml"
    args = ["lock", *TARGET, "torch==2.13.0", "-o", str(out)]
    if how == "options":
        args += ["--torch-index-url", mirrors.torch, "--index-url", mirrors.pypi]
    else:  # what install reads too: $GPUSTACK_TORCH_INDEX_URL and pip's own $PIP_INDEX_URL
        monkeypatch.setenv("GPUSTACK_TORCH_INDEX_URL", mirrors.torch)
        monkeypatch.setenv("PIP_INDEX_URL", mirrors.pypi)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    locked = loads(text)
    assert not locked.missing
    files = {p.name: p for p in locked.packages}
    assert set(files) == {"torch", "filelock"}  # torch's dependency resolved too: from the PyPI mirror
    assert files["torch"].index == f"{mirrors.torch}/cpu" and files["filelock"].index == mirrors.pypi
    assert files["torch"].sha256 == mirrors.sha["torch-2.13.0+cpu-py3-none-any.whl"]
    assert files["filelock"].sha256 == mirrors.sha["filelock-3.16.1-py3-none-any.whl"]
    assert all(u.startswith("http://127.0.0.1:") for u in _urls(text)), _urls(text)


def test_lock_no_deps_reads_hashes_from_a_file_mirror(mirrors: Mirrors, tmp_path: Path) -> None:
    # an air-gapped copy on disk (file://), as install takes it: the hash is read from its page, not left missing
    out = tmp_path / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", *TARGET, "torch==2.13.0", "--no-deps", "-o", str(out),
                                       "--torch-index-url", (mirrors.root / "torch").as_uri()])
    assert result.exit_code == 0, result.output
    locked = loads(out.read_text())
    assert not locked.missing and [p.index for p in locked.packages] == [(mirrors.root / "torch" / "cpu").as_uri()]
    assert locked.packages[0].sha256 == mirrors.sha["torch-2.13.0+cpu-py3-none-any.whl"]


def test_lock_mirror_password_is_never_printed_nor_written(mirrors: Mirrors, tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    secret = mirrors.torch.replace("http://", "http://alice:s3cret@")
    result = CliRunner().invoke(main, ["-v", "lock", *TARGET, "torch==2.13.0", "-o", str(out),
                                       "--torch-index-url", secret, "--index-url", mirrors.pypi])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    text = out.read_text()  # a lock is shared: the mirror's credentials stay out of it (uv's locks do the same)
    assert "s3cret" not in text and "alice" not in text
    assert {p.name: p.index for p in loads(text).packages}["torch"] == f"{mirrors.torch}/cpu"


@pytest.mark.parametrize("args, named", [
    (["--torch-index-url", "ftp://mirror.example/whl"], "--torch-index-url"),
    (["--index-url", "http://mirror.example/simple"], "--index-url"),  # plain http off loopback, as install refuses
])
def test_lock_bad_mirror_is_bad_input_before_any_work(tmp_path: Path, args: list[str], named: str) -> None:
    out = tmp_path / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", *TARGET, "torch==2.13.0", "-o", str(out), *args])
    assert result.exit_code == 2 and result.stderr.startswith(f"gpustack: {named} ")
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_dockerfile_installs_everything_from_the_mirrors() -> None:
    torch, pypi = "https://mirror.example/pytorch/whl", "https://mirror.example/pypi/simple"
    result = CliRunner().invoke(main, ["dockerfile", "--gpu", "A100", "--driver", "550.54.15", "torch==2.6.0",
                                       "xformers", "--torch-index-url", torch, "--index-url", pypi])
    assert result.exit_code == 0, result.output
    text = result.stdout
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert not any("pypi.org" in line or "download.pytorch.org" in line for line in body), text
    # every stage's pip and uv default to the mirror: seed packages, ninja and dependencies come from it too
    stages = [i for i, line in enumerate(body) if line.startswith("FROM ") and " AS uv" not in line]
    for i in stages:
        assert body[i + 1] == f"ENV PIP_INDEX_URL={pypi} UV_DEFAULT_INDEX={pypi}"


@pytest.mark.parametrize("args, env, named", [
    (["--index-url", "file:///opt/pypi/simple"], {}, "--index-url"),
    (["--torch-index-url", "file:///srv/whl"], {}, "--torch-index-url"),
    ([], {"GPUSTACK_TORCH_INDEX_URL": "file:///srv/whl"}, "$GPUSTACK_TORCH_INDEX_URL"),
    (["--index-url", "https://bob:hunter2@mirror.example/simple"], {}, "--index-url"),
])
def test_dockerfile_refuses_a_mirror_the_build_cannot_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          args: list[str], env: dict[str, str], named: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "Dockerfile"
    result = CliRunner().invoke(main, ["dockerfile", "--gpu", "A100", "torch==2.6.0", "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"gpustack: dockerfile {named} ") and len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.output and not out.exists()


H100 = ["--gpu", "H100", "--driver", "580.159.04", "--python", "3.11", "--platform", "linux_x86_64"]


V100 = ["--gpu", "V100", "--driver", "580.159.04", "--python", "3.11", "--platform", "linux_x86_64"]


def _declared(package: str, version: str) -> set[str]:
    """The names (less torch) a wheel of ``package`` built from source declares, as the matrix records them."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from resolver.matrix import load

    m = load()
    if package == "flash-attn":
        reqs = next(f for f in m.flash_attn if str(f.version) == version).requires_dist
    else:
        reqs = next(x for x in m.xformers if str(x.version) == version).source_requires_dist
    assert reqs is not None, f"the matrix records no install_requires for {package} {version}"
    return {str(canonicalize_name(Requirement(r).name)) for r in reqs} - {"torch"}


@pytest.mark.parametrize("package, version, target, torch, declared, wheel", [
    # matrices/flash_attn.toml install_requires (its setup.py)
    ("flash-attn", "2.8.3.post2", H100, "2.11.0", {"einops"}, "flash_attn-*.whl"),
    # matrices/xformers_source.toml install_requires (requirements.txt at the tag); a V100 has no xformers wheel
    ("xformers", "0.0.35", V100, "2.10.0", {"numpy"}, "xformers-*.whl"),
])
def test_a_source_built_package_brings_its_declared_dependencies_in_install_lock_and_dockerfile(
        mirrors: Mirrors, tmp_path: Path, package: str, version: str, target: list[str], torch: str,
        declared: set[str], wheel: str) -> None:
    """A package built from source declares its install_requires: install installs the built wheel with its
    dependencies (torch held), so the lock must hold them too and the image must install them, or
    ``flash_attn.bert_padding`` (einops) or ``xformers.ops`` (numpy) cannot import there."""
    import json

    assert _declared(package, version) == declared
    request = [f"torch=={torch}", f"{package}=={version}"]  # 2.8.3.post2 is unverified: asked, not ranked first
    # install (its dry run): the built wheel goes in with its dependencies, torch held by a constraint
    dry = CliRunner().invoke(main, ["install", "--dry-run", "--json", "--installer", "pip", *target, *request])
    assert dry.exit_code == 0, dry.output
    steps = json.loads(dry.stdout)["steps"]
    built = [s["argv"] for s in steps if s["package"] == package and "<built wheel>" in s["argv"]]
    assert len(built) == 1 and "--no-deps" not in built[0] and "--constraint" in built[0]
    # lock: the build's sdist, and what the built wheel declares
    out = tmp_path / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", *target, *request, "--index-url", mirrors.pypi, "-o", str(out)])
    assert result.exit_code == 0, result.output
    locked = loads(out.read_text())
    by_name = {p.name: p for p in locked.packages}
    assert by_name[package].method == "source" and by_name[package].kind == "sdist"
    assert by_name[package].version == version
    assert declared <= set(by_name), sorted(by_name)
    assert by_name["torch"].version == torch
    # dockerfile: the built wheel is installed with its dependencies, torch's build held on the same line
    image = CliRunner().invoke(main, ["dockerfile", *target, *request])
    assert image.exit_code == 0, image.output
    line = next(x for x in image.stdout.splitlines() if f"/tmp/wheels/{wheel}" in x)
    assert "--no-deps" not in line and line.rstrip(" \\").endswith(f"torch=={torch}"), line
    # download: the built wheel's dependencies are fetched for the target too, or `install --find-links DIR
    # --offline` could not install them (it downloaded only the sdist, --no-deps)
    fetched = CliRunner().invoke(main, ["download", *target, *request, "--dest", str(tmp_path / "d"), "--dry-run"])
    assert fetched.exit_code == 0, fetched.output
    from packaging.requirements import Requirement

    deps = next(x for x in fetched.stdout.splitlines() if "--only-binary=:all:" in x and "-c" in x.split()
                and f"torch=={torch}" not in x)  # after the sdist's line: the built wheel's dependencies, torch held
    assert declared <= {Requirement(a).name for a in deps.split()[-len(declared):]}, fetched.stdout


def test_dockerfile_installs_a_wheel_the_plan_takes_by_url_from_that_url() -> None:
    # flash-attn 2.x for torch 2.6: a GitHub release wheel. `flash-attn==X` alone would make pip take PyPI's sdist
    # and build it in the runtime image (no nvcc there), where install and lock take the planned wheel.
    # --glibc 2.35: the GitHub wheel needs the glibc of the Ubuntu it was built on (platforms.toml [[os]])
    plan = CliRunner().invoke(main, ["plan", "--json", "--gpu", "A100", "--python", "3.11", "--glibc", "2.35",
                                     "torch==2.6.0", "flash-attn"])
    import json

    url = next(s["url"] for s in json.loads(plan.stdout)["steps"] if s["package"] == "flash-attn")
    assert url and url.startswith("https://github.com/")
    image = CliRunner().invoke(main, ["dockerfile", "--gpu", "A100", "--python", "3.11", "--glibc", "2.35",
                                      "torch==2.6.0", "flash-attn"])
    assert image.exit_code == 0, image.output
    assert f"'flash-attn @ {url}' torch==2.6.0" in image.stdout


def test_a_bare_relock_locks_for_the_locks_own_target_not_this_machine(mirrors: Mirrors, tmp_path: Path) -> None:
    """`lock -o EXISTING` with no request re-locks what the lock was made for: its request, and its target (GPUs,
    driver, Python, platform, glibc as recorded). On this GPU-less Python 3.11 machine an H100 / Python 3.12 lock
    stays one: the same file comes out (it used to become a CPU lock for this machine, keeping the H100's driver)."""
    out = tmp_path / "pylock.toml"
    target = ["--gpu", "H100", "--driver", "580.159.04", "--python", "3.12", "--platform", "linux_x86_64"]
    first = CliRunner().invoke(main, ["lock", *target, "torch==2.11.0", "--index-url", mirrors.pypi, "-o", str(out)])
    assert first.exit_code == 0, first.output
    made = out.read_text()
    locked = loads(made)
    assert locked.target.cuda == "13.0" and locked.target.python == "3.12" and locked.glibc is None
    again = CliRunner().invoke(main, ["lock", "--index-url", mirrors.pypi, "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert ("re-locking " in again.stderr and "torch==2.11.0 --gpu H100 --driver 580.159.04 --python 3.12 "
            "--platform linux_x86_64" in again.stderr), again.stderr
    assert out.read_text() == made
    # what is given still wins: the same lock re-locked for Python 3.11 keeps its GPUs and driver
    py311 = CliRunner().invoke(main, ["lock", "--python", "3.11", "--index-url", mirrors.pypi, "-o", str(out)])
    assert py311.exit_code == 0, py311.output
    relocked = loads(out.read_text())
    assert relocked.target.python == "3.11" and relocked.target.gpus == locked.target.gpus
    assert relocked.driver == "580.159.04" and relocked.target.cuda == "13.0"


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_install_lock_allow_missing_hashes_installs_a_file_known_only_by_its_index(
        mirrors: Mirrors, tmp_path: Path, backend: str) -> None:
    """A lock made while the PyTorch index (here its mirror) did not answer holds torch under missing, with its index
    and no URL. `install --lock --allow-missing-hashes` must ask that index for it (pip and uv otherwise ask PyPI,
    which has no +cpu build): it used to fail with 'no version of torch==2.13.0+cpu'."""
    late = f"late-{backend}"
    out = tmp_path / "pylock.toml"
    made = CliRunner().invoke(main, ["lock", *TARGET, "torch==2.13.0", "--no-deps", "-o", str(out),
                                     "--torch-index-url", f"{mirrors.torch.rsplit('/', 1)[0]}/{late}"])
    assert made.exit_code == 0, made.output
    locked = loads(out.read_text())
    assert [(p.name, p.url) for p in locked.missing] == [("torch", "")] and not locked.packages
    wheel = mirrors.root / "torch" / "cpu" / "torch-2.13.0+cpu-py3-none-any.whl"
    fakewheels.write_flat_index(mirrors.root / late / "cpu", [wheel])  # the index answers now
    venv = tmp_path / "venv"
    done = CliRunner().invoke(main, ["install", "--lock", str(out), "--allow-missing-hashes", "--venv", str(venv),
                                     "--installer", backend])
    assert done.exit_code == 0, done.output
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "torch-2.13.0+cpu.dist-info").is_dir(), sorted(p.name for p in site.iterdir())


# --- a host that does not answer: named at once, as install names it (installers.check_reachable) ---------------


def _assert_unreachable(result: object, out: Path, host: str, option: str) -> None:
    rc, err = result.exit_code, result.stderr  # type: ignore[attr-defined]
    assert rc == 1, err  # the network, not the input (README's exit codes)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"gpustack: cannot reach {host} "), err
    assert option in lines[0] and lines[0].endswith("nothing written"), lines[0]
    assert not out.exists() and not list(out.parent.glob(".*")), sorted(out.parent.iterdir())


@pytest.mark.parametrize("which", ["torch", "pypi"])
def test_lock_names_a_mirror_that_does_not_answer_before_the_resolver_runs(
        mirrors: Mirrors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    """A mirror on a host that never resolves (RFC 2606's .invalid): one line naming the host and the option that
    gave it, exit 1, no file. uv is never asked (it retried for seconds, then said only 'failed to lookup address
    information'); the other mirror, on loopback, answers its one probe (installers.silent_hosts asks loopback too)."""
    import tempfile

    from resolver import lock_uv

    monkeypatch.setattr(lock_uv.UvRun, "result", lambda self: pytest.fail("the resolver was waited for"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where uv's run (started meanwhile) works
    torch = "https://u:s3cret@torch-mirror.invalid/whl" if which == "torch" else mirrors.torch
    pypi = "https://pypi-mirror.invalid/simple" if which == "pypi" else mirrors.pypi
    out = tmp_path / "out" / "pylock.toml"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["lock", *TARGET, "torch==2.13.0", "-o", str(out),
                                       "--torch-index-url", torch, "--index-url", pypi])
    _assert_unreachable(result, out, f"{which}-mirror.invalid",
                        "--torch-index-url" if which == "torch" else "--index-url")
    assert "s3cret" not in result.output
    assert not list((tmp_path / "tmp").iterdir())  # the uv run begun while the hosts were probed: stopped, removed


def _resolves(host: str) -> bool:
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@pytest.mark.skipif(_resolves("download.pytorch.org"), reason="download.pytorch.org resolves here")
def test_lock_from_an_unreachable_pytorch_index_names_it_and_the_mirror_option(tmp_path: Path) -> None:
    """Where download.pytorch.org does not answer (this machine, a firewalled one) a CPU lock fails at once naming
    it and --torch-index-url; it used to take ~10 s and say 'uv: failed to lookup address information'."""
    out = tmp_path / "out" / "pylock.toml"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["lock", *TARGET, "torch==2.13.0", "-o", str(out)])
    _assert_unreachable(result, out, "download.pytorch.org", "--torch-index-url")


@pytest.mark.skipif(_resolves("download.pytorch.org"), reason="download.pytorch.org resolves here")
def test_install_from_an_unreachable_pytorch_index_names_the_mirror_option_as_lock_does(tmp_path: Path) -> None:
    """install said only 'on a connected machine run gpustack download ...'; it now names --torch-index-url first,
    from the same phrase lock uses (installers.mirror_of)."""
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = CliRunner().invoke(main, ["install", "--cpu", "torch==2.13.0", "--python-exe", str(venv / "bin" / "python"),
                                       "--installer", "uv"])
    assert result.exit_code == 1, result.output
    [said] = result.output.strip().splitlines()
    assert said.startswith("gpustack: https://download.pytorch.org/whl/cpu is not reachable (needed for "
                           "torch==2.13.0+cpu); install through a mirror of download.pytorch.org/whl (same layout: "
                           "URL/cu121): --torch-index-url URL or $GPUSTACK_TORCH_INDEX_URL, or on a connected machine "
                           "run `gpustack download"), said


@pytest.mark.parametrize("broken", ["cache-is-a-file", "index-pages-is-a-file", "a-file-inside-index-pages"])
def test_a_cache_folder_in_the_way_is_one_line_naming_it(mirrors: Mirrors, tmp_path: Path, broken: str) -> None:
    # GPUSTACK_CACHE_DIR a regular file (or <cache>/index-pages one) printed an 84-line traceback: NotADirectoryError
    # from cachecontrol (and, before it, from the early start of uv for a remembered lock request)
    import subprocess

    cache = tmp_path / "cache"
    if broken == "cache-is-a-file":
        cache.write_text("")
        named = str(cache)
    elif broken == "index-pages-is-a-file":
        cache.mkdir()
        (cache / "index-pages").write_text("")
        named = str(cache / "index-pages")
    else:  # cachecontrol's own folders (<hash>[0]/<hash>[1]/...) meet a file
        for c in "0123456789abcdef":
            (cache / "index-pages").mkdir(parents=True, exist_ok=True)
            (cache / "index-pages" / c).write_text("")
        named = str(cache / "index-pages")
    env = {**os.environ, "GPUSTACK_CACHE_DIR": str(cache), "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1"}
    done = subprocess.run([sys.executable, "-m", "resolver", "lock", *TARGET, "torch==2.13.0", "--no-deps", "-o", "-",
                           "--torch-index-url", mirrors.torch], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr and done.stdout == "", done.stderr


def test_a_lock_says_its_dependencies_were_resolved_for_python_x_y_0(tmp_path: Path) -> None:
    # The target's patch release is not known (--python 3.11): uv resolves as on 3.11.0, so filelock 3.17.0
    # (Requires-Python >=3.11.4, which a 3.11.7 host could run) is held back for 3.16.1. The lock says so.
    wheels = tmp_path / "wheels"
    torch = fakewheels.fake_torch(wheels, "2.13.0+cpu", cuda=None, requires=["filelock"])
    old = fakewheels.make_wheel(wheels, "filelock", "3.16.1")
    new = fakewheels.make_wheel(wheels, "filelock", "3.17.0", requires_python=">=3.11.4")
    fakewheels.write_flat_index(tmp_path / "torch" / "cpu", [torch])
    fakewheels.write_index(tmp_path / "pypi", [old, new])
    mirrors = ["--torch-index-url", (tmp_path / "torch").as_uri(), "--index-url", (tmp_path / "pypi" / "simple").as_uri()]
    note = ("Python 3.11 taken as 3.11.0 for the dependencies (the target's patch release is not known; uv and pip "
            "resolve --python-version 3.11 as 3.11.0): one whose Requires-Python or marker needs a later 3.11.x is "
            "held back or left out")
    out = tmp_path / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", *TARGET, "torch==2.13.0", *mirrors, "-o", str(out)])
    assert result.exit_code == 0, result.output
    locked = loads(out.read_text())
    assert {p.name: p.version for p in locked.packages} == {"torch": "2.13.0+cpu", "filelock": "3.16.1"}
    assert note in locked.notes, locked.notes
    # --no-deps resolves nothing: no such note
    result = CliRunner().invoke(main, ["lock", *TARGET, "torch==2.13.0", "--no-deps", *mirrors, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert not [n for n in loads(out.read_text()).notes if "taken as 3.11.0" in n]
