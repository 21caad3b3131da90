"""``gpustack matrix refresh`` against recorded PyPI responses, served over real HTTP (with Range) on loopback.

``tests/data/refresh/*.json`` are PEP 691 pages recorded from pypi.org (trimmed to a few releases); ``*.METADATA``
are the real METADATA files of two torch wheels. The wheels themselves are small zips built here around that
METADATA, with a padding member so that a full download would be visible in the byte count.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from packaging.version import Version

from resolver import refresh as R
from resolver.cli import main
from resolver.matrix import load_dir, matrix_dir
from _net import pypi_answers

DATA = Path(__file__).parent / "data" / "refresh"
ARCH = b"sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"


def _wheel(filename: str) -> bytes:
    version = filename.split("-")[1]
    meta = DATA / f"torch-{version}.METADATA"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("torch/lib/libtorch_cuda.so", os.urandom(1 << 21), compress_type=zipfile.ZIP_STORED)
        z.writestr("torch/lib/libtorch_python.so", b"\x7fELF" + b"\x01" * 5000 + b"\x00" + ARCH + b"\x00" + b"\x02" * 5000)
        if meta.exists():
            z.writestr(f"torch-{version}.dist-info/METADATA", meta.read_bytes())
        z.writestr(f"torch-{version}.dist-info/RECORD", b"")
    return buf.getvalue()


class _Server:
    def __init__(self) -> None:
        self.served = 0
        self.pages: dict[str, bytes] = {}
        self.wheels: dict[str, bytes] = {}
        self.broken: bytes | None = None


@pytest.fixture(scope="module")
def _pypi_server() -> Iterator[tuple[str, _Server]]:
    state = _Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            parts = self.path.strip("/").split("/")
            if parts[0] == "simple" and len(parts) == 2:
                body = state.broken if state.broken is not None else state.pages.get(parts[1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", R.ACCEPT_JSON)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            data = state.wheels.get(parts[-1])
            if data is None:
                self.send_error(404)
                return
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes="):
                start, _, end = rng[6:].partition("-")
                lo, hi = int(start), min(int(end), len(data) - 1)
                chunk = data[lo:hi + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
            else:
                chunk = data
                self.send_response(200)
            state.served += len(chunk)
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            self.wfile.write(chunk)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("torch", "xformers", "flash-attn"):
        page = json.loads((DATA / f"{name}.json").read_text())
        for f in page["files"]:
            f["url"] = f"{base}/files/{f['filename']}"
            if name == "torch" and f["filename"].endswith(".whl"):
                state.wheels[f["filename"]] = _wheel(f["filename"])
                f["size"] = len(state.wheels[f["filename"]])
        state.pages[name] = json.dumps(page).encode()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{base}/simple", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pypi(_pypi_server: tuple[str, _Server]) -> Iterator[tuple[str, _Server]]:
    _pypi_server[1].broken = None
    _pypi_server[1].served = 0
    yield _pypi_server
    _pypi_server[1].broken = None


def _row(rows: list[dict[str, object]], version: str, platform: str) -> dict[str, object]:
    return next(r for r in rows if r["version"] == version and r["platform"] == platform)


def test_rows_from_recorded_pages(pypi: tuple[str, _Server]) -> None:
    index, state = pypi
    rows, review = R.package_rows(requests.Session(), "torch", metadata=True, arch=True, index=index)
    old = _row(rows, "1.13.1", "linux_aarch64")
    assert old["pythons"] == ["3.7", "3.8", "3.9", "3.10"] and old["glibc"] == "2.17"  # no cp311 off x86_64
    assert _row(rows, "1.13.1", "linux_x86_64")["pythons"][-1] == "3.11"  # type: ignore[index]
    new = _row(rows, "2.15.0", "linux_x86_64")
    assert new["glibc"] == "2.28" and new["platform_tag"] == "manylinux_2_28_x86_64"
    assert new["build"] == "cu132"  # cuda-toolkit[...]==13.2.2 in METADATA
    assert new["requires_python"] == ">=3.11" and "3.13" in new["pythons"]  # type: ignore[operator]
    assert _row(rows, "2.15.0", "win_amd64")["build"] == "cpu" and "glibc" not in _row(rows, "2.15.0", "win_amd64")
    assert "build" not in _row(rows, "1.13.1", "linux_x86_64") or _row(rows, "1.13.1", "linux_x86_64")["build"] == "cu117"
    assert any(line.endswith(repr(ARCH.decode())) for line in review)
    # range reads: the zip directory and two members, never the 2 MiB padding member of each wheel
    wheels_read = sum(1 for line in review if "compiled arch list" in line) + 6
    assert state.served < wheels_read * (1 << 20)


def test_sdist_only_package_is_reported(pypi: tuple[str, _Server]) -> None:
    rows, review = R.package_rows(requests.Session(), "flash-attn", index=pypi[0])
    assert rows == [] and "sdist only" in review[0]


def test_cli_prints_diff_and_writes_only_when_asked(pypi: tuple[str, _Server], tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    shutil.copytree(matrix_dir(), mdir, ignore=shutil.ignore_patterns("__*"))
    text = (mdir / "wheels.toml").read_text()
    blocks = text.split("[[wheel]]\n")
    before = "[[wheel]]\n".join(b for b in blocks if 'package = "xformers"\nversion = "0.0.35"\n' not in b)
    (mdir / "wheels.toml").write_text(before)  # as if 0.0.35 were new on PyPI
    args = ["matrix", "refresh", "--index", pypi[0], "--package", "xformers", "--matrix-dir", str(mdir)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "+++ b/matrices/wheels.toml" in res.stdout and "review: new: xformers 0.0.35" in res.stderr
    assert (mdir / "wheels.toml").read_text() == before  # a diff, nothing written
    res = CliRunner().invoke(main, args + ["--write"])
    assert res.exit_code == 1
    rows = tomllib.loads((mdir / "wheels.toml").read_text())["wheel"]
    assert all(r.get("unverified") for r in rows if r["package"] == "xformers" and r["version"] == "0.0.35")
    assert load_dir(mdir).wheel_facts("torch", "2.15.0", "linux_x86_64") is not None  # other rows kept
    assert CliRunner().invoke(main, args).exit_code == 0  # refreshed: nothing left to change


@pytest.mark.parametrize("body", [b"<html>not json</html>", b'{"files": 3}', b'{"files": [{"filename": 1}]}',
                                  b'{"files": [{"filename": "torch-x-y.whl", "url": "u"}]}'])
def test_malformed_response_is_one_line_exit_2_nothing_written(pypi: tuple[str, _Server], tmp_path: Path,
                                                               body: bytes) -> None:
    index, state = pypi
    state.broken = body
    mdir = tmp_path / "m"
    shutil.copytree(matrix_dir(), mdir, ignore=shutil.ignore_patterns("__*"))
    before = (mdir / "wheels.toml").read_text()
    res = CliRunner().invoke(main, ["matrix", "refresh", "--index", index, "--package", "torch", "--write",
                                    "--matrix-dir", str(mdir)])
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "simple API page of torch" in res.stderr
    assert (mdir / "wheels.toml").read_text() == before


def _matrix_copy(tmp_path: Path) -> tuple[Path, str]:
    mdir = tmp_path / "m"
    shutil.copytree(matrix_dir(), mdir, ignore=shutil.ignore_patterns("__*"))
    return mdir, (mdir / "wheels.toml").read_text()


def _one_line(res: object) -> str:
    err = res.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(err) == 1 and "Traceback" not in res.output, res.output  # type: ignore[attr-defined]
    return str(err[0])


def test_index_that_does_not_answer_exits_1_nothing_written(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mdir, before = _matrix_copy(tmp_path)
    res = CliRunner().invoke(main, ["matrix", "refresh", "--index", f"http://127.0.0.1:{port}/simple", "--package",
                                    "torch", "--write", "--matrix-dir", str(mdir)])
    assert res.exit_code == 1, res.output  # README: 1 for an index that does not answer, 2 for bad input
    assert f"127.0.0.1:{port}" in _one_line(res) and "no answer" in res.stderr
    assert (mdir / "wheels.toml").read_text() == before


@pytest.mark.parametrize("index", ["file:///opt/pypi/simple", "ftp://x/simple", "http://pypi.example/simple",
                                   "https:///simple"])
def test_index_refresh_cannot_read_is_bad_input(tmp_path: Path, index: str) -> None:
    mdir, before = _matrix_copy(tmp_path)
    res = CliRunner().invoke(main, ["matrix", "refresh", "--index", index, "--package", "torch", "--write",
                                    "--matrix-dir", str(mdir)])
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert index in line and "https://" in line and "InvalidSchema" not in line
    assert (mdir / "wheels.toml").read_text() == before


def test_index_without_the_package_says_so_in_one_line(pypi: tuple[str, _Server], tmp_path: Path) -> None:
    mdir, before = _matrix_copy(tmp_path)
    res = CliRunner().invoke(main, ["matrix", "refresh", "--index", pypi[0], "--package", "sageattention", "--write",
                                    "--matrix-dir", str(mdir)])  # the recorded index serves torch, xformers, flash-attn
    assert res.exit_code == 2, res.output
    assert "HTTP 404: the index has no sageattention; name the packages it serves with --package" in _one_line(res)
    assert (mdir / "wheels.toml").read_text() == before


def test_folder_without_a_matrix_is_refused_as_show_refuses_it(pypi: tuple[str, _Server], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["matrix", "refresh", "--index", pypi[0], "--package", "xformers", "--write",
                                    "--matrix-dir", str(empty)])
    show = CliRunner().invoke(main, ["matrix", "show", "torch", "--matrix-dir", str(empty)])
    assert res.exit_code == show.exit_code == 2, res.output
    assert _one_line(res) == _one_line(show) and str(empty) in res.stderr
    assert list(empty.iterdir()) == []  # --write wrote nothing


@pytest.mark.parametrize(("since", "names"), [("torch=9.0", ["torch 9.0", "1.13.1 to 2.15.0"]),
                                              ("numpy=1.0", ["numpy", "torch, xformers"]),
                                              ("torch", ["NAME=VERSION"])])
def test_since_names_a_tracked_package_and_a_listed_release(pypi: tuple[str, _Server], tmp_path: Path, since: str,
                                                            names: list[str]) -> None:
    mdir, before = _matrix_copy(tmp_path)
    res = CliRunner().invoke(main, ["matrix", "refresh", "--index", pypi[0], "--package", "torch", "--since", since,
                                    "--write", "--matrix-dir", str(mdir)])
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert "--since" in line and all(n in line for n in names) and "publishes no wheels" not in line
    assert (mdir / "wheels.toml").read_text() == before


def test_since_a_listed_release_skips_older_rows_without_calling_them_gone(pypi: tuple[str, _Server],
                                                                           tmp_path: Path) -> None:
    mdir, before = _matrix_copy(tmp_path)
    res = CliRunner().invoke(main, ["matrix", "refresh", "--index", pypi[0], "--package", "Torch", "--since",
                                    "TORCH=2.15", "--matrix-dir", str(mdir)])  # names normalized; 2.15 == 2.15.0
    assert res.exit_code in (0, 1), res.output
    assert "1.13.1" not in res.stdout and "no longer lists" not in res.stderr  # older rows were not read: kept quietly
    assert (mdir / "wheels.toml").read_text() == before


def test_glibc_of_platform_tags() -> None:
    assert R.glibc_of("manylinux1_x86_64") == (2, 5)
    assert R.glibc_of("manylinux2014_aarch64") == (2, 17)
    assert R.glibc_of("manylinux_2_28_x86_64") == (2, 28)
    assert R.glibc_of("win_amd64") is None


@pytest.mark.network
def test_live_pypi_matches_the_shipped_rows() -> None:
    if not pypi_answers():
        pytest.skip("PyPI does not answer")
    try:
        rows, _ = R.package_rows(requests.Session(), "torch", since=Version("2.15.0"))
    except R.RefreshError as exc:
        pytest.skip(f"PyPI did not answer usefully: {exc}")
    m = load_dir(matrix_dir())
    for r in rows:
        if r["version"] != "2.15.0":
            continue
        facts = m.wheel_facts("torch", str(r["version"]), str(r["platform"]))
        assert facts is not None, r
        assert list(facts.pythons) == r["pythons"] and facts.platform_tag == r["platform_tag"]
