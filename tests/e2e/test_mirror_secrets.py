"""A mirror's password never reaches the process table: the real pip and uv get credentialed index URLs through
their environment (``redact.secrets_to_env``, applied by ``_subprocess`` to every child), and still use exactly the
planned indexes. The mirror is served on 127.0.0.1 behind HTTP basic auth: every file needs the password, so an
install that succeeds got it; while the installer runs, each request scans every process's command line."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import TwoIndexes, two_index_plan_file, write_two_index
import fakewheels
from resolver import envstate
from resolver.cli import main


class _Seen:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests = 0
        self.refused = 0
        self.in_argv: list[str] = []

    def scan(self) -> None:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if any(self.secret.encode() in a for a in args):
                self.in_argv.append(b" ".join(args).decode(errors="replace"))


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TwoIndexes, _Seen]]:
    root = tmp_path_factory.mktemp("guarded")
    write_two_index(root)
    seen = _Seen(secrets.token_hex(8))
    wanted = "Basic " + base64.b64encode(f"alice:{seen.secret}".encode()).decode()

    class Guarded(fakewheels.QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.requests += 1
            seen.scan()
            if self.headers.get("Authorization") != wanted:
                seen.refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Guarded, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield TwoIndexes(base, f"{base}/whl/cu121", f"{base}/simple", root / "wheels", root), seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_credentials_reach_the_installer_but_not_its_argv(guarded: tuple[TwoIndexes, _Seen], venv: Path,
                                                          tmp_path: Path, backend: str) -> None:
    idx, seen = guarded
    secret_of: Any = lambda url: url.replace("http://", f"http://alice:{seen.secret}@")  # noqa: E731
    args = ["install", "--plan", str(two_index_plan_file(tmp_path)), "--python-exe", str(venv), "--installer", backend,
            "--torch-index-url", secret_of(f"{idx.base}/whl")]
    before = seen.requests
    out = CliRunner().invoke(main, args, env={"PIP_INDEX_URL": secret_of(idx.pypi_url)})
    assert out.exit_code == 0, out.output
    assert seen.requests > before and seen.in_argv == []
    assert seen.secret not in out.output
    snap = envstate.snapshot(str(venv))
    # the planned indexes, no other: the torch index's local builds, and torch's dependency from the PyPI mirror
    assert (snap.version("torch"), snap.version("xformers")) == ("2.1.0+cu121", "0.0.23+cu121")
    assert snap.version("typing-extensions") == "4.12.2"


def test_the_journal_keeps_credentials_from_other_users(tmp_path: Path) -> None:
    # restore_args may need them (a reinstall of what the backup lacks, by `recover`): 0600 then; the plan is redacted
    from resolver import journal

    prefix = tmp_path / "env"
    (prefix / ".gpustack").mkdir(parents=True)
    plan = {"steps": [{"index_url": "https://bob:pw123@mirror.example/simple"}]}
    args = ["--index-url", "https://bob:pw123@mirror.example/simple"]
    txn = journal.begin(str(prefix / "bin" / "python"), str(prefix), {}, command="install", plan=plan,
                        backend="pip", restore_args=args)
    mode = txn.path.stat().st_mode & 0o777
    assert mode == 0o600 and json.loads(txn.path.read_text())["restore_args"] == args
    assert "pw123" not in json.dumps(json.loads(txn.path.read_text())["plan"])
    txn.path.unlink()
    plain = journal.begin(str(prefix / "bin" / "python"), str(prefix), {}, command="install", plan=None,
                          backend="pip", restore_args=["--index-url", "https://mirror.example/simple"])
    assert plain.path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    old = os.umask(0)
    os.umask(old)
    return old
