"""Bad input, command by command and input by input (issue 12's rule, docs/input.md): every option, argument, file
and environment variable gpustack reads, fed an empty, control-character, over-long, wrong-type or wrong-kind value,
ends with exit 2 and one ``gpustack:`` line on stderr that names the input and a next step: no traceback, no hang,
and nothing created or changed in the working directory or the cache.

The table is ``(id, argv, env)``: ``{b}`` in an argument or a value stands for the sandbox folder (``_sandbox``).
Each row runs the real CLI in-process (CliRunner: none of these reaches a child process), under a SIGALRM timeout.
tests/test_fuzz_cli.py holds the older, broader sweep of malformed values (drivers, requirement lines, plan shapes).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

import fuzz_cases  # noqa: E402

from resolver.cli import main  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
FLEET = Path(__file__).parent / "fixtures" / "fleet"
T = ["--gpu", "A100", "--driver", "535.104.05", "--python", "3.11", "--platform", "linux_x86_64"]
MEGA = "x" * (1 << 20)  # a 1 MB value
TIMEOUT_S = 30

pytestmark = pytest.mark.slow  # ~700 CLI runs: 6 s of CPU, up to 45 s of wall time under load (CI still runs it)

# A PEP 751 lock another tool wrote (uv's shape): valid TOML, valid PEP 751, nothing of gpustack's in it.
UV_PYLOCK = """lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "idna"
version = "3.10"
index = "https://pypi.org/simple"
wheels = [{ url = "https://files.pythonhosted.org/packages/idna-3.10-py3-none-any.whl", upload-time = 2024-09-15T18:07:37Z, size = 70442, hashes = { sha256 = "946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3" } }]
"""


def _sandbox(root: Path) -> None:
    """Lay out the files the rows point at: good files of each kind (to give as the wrong kind) and bad ones."""
    (root / "existing.txt").write_text("keep me\n")
    (root / "empty").write_text("")
    (root / "blank").write_text(" \n\t\n")
    (root / "nul.txt").write_bytes(b"torch\x00==2.1\n")
    (root / "ctl.txt").write_text("torch\x1b[2J\n")
    (root / "oneline.txt").write_text(MEGA + "\n")  # a 1 MB line
    with open(root / "huge", "wb") as f:  # sparse: 20 MB, over every file limit, costs no disk
        f.truncate(20 << 20)
    (root / "binary").write_bytes(bytes(range(256)) * 4)
    (root / "reqs.txt").write_text("torch==2.1.2\n")
    (root / "plan.json").write_text(json.dumps(_plan()))
    (root / "pylock.toml").write_text((GOLDEN / "lock_gpu_source.toml").read_text())
    (root / "pylock.uv.toml").write_text(UV_PYLOCK)
    (root / "kubectl.json").write_text((FLEET / "kubectl-nodes.json").read_text())
    (root / "req.toml").write_text('[project]\nname = "x"\n')
    (root / "script.sh").write_text("#!/bin/sh\nexit 0\n")  # not executable
    (root / "folder").mkdir()
    (root / "venv").mkdir()  # an empty folder: no environment in it
    (root / "matrices").mkdir()
    (root / "matrices" / "torch.toml").write_text("= = =")
    os.mkfifo(root / "fifo")


def _plan() -> dict[str, object]:
    from _plans import plan_json

    rc, doc = plan_json(*T)
    assert rc == 0
    return doc


# Paths that are not a readable regular file, whoever runs the test (root reads a mode-000 file, so none is used).
NOT_A_FILE = {
    "folder": "{b}/folder", "fifo": "{b}/fifo", "dev-zero": "/dev/zero", "missing": "{b}/missing",
    "under-a-file": "{b}/existing.txt/x", "name-too-long": "{b}/" + "n" * 300, "nul-in-path": "{b}/a\x00b",
    "huge": "{b}/huge", "unicode-missing": "{b}/名前/ファイル.txt",
}
# Values of the wrong shape for a text option.
BAD_TEXT = {"space": " ", "nul": "a\x00b", "escape": "a\x1b[2Jb", "newline": "a\nb", "mega": MEGA}


def _rows() -> Iterator[tuple[str, list[str], dict[str, str]]]:
    none: dict[str, str] = {}
    # files where a file is read
    for label, path in NOT_A_FILE.items():
        yield f"plan -r {label}", ["plan", *T, "-r", path], none
        yield f"install --plan {label}", ["install", "--dry-run", "--plan", path], none
        yield f"install --lock {label}", ["install", "--dry-run", "--lock", path], none
        yield f"download --plan {label}", ["download", "--dry-run", "--dest", "{b}/dl", "--plan", path], none
        yield f"check-upgrade --lock {label}", ["check-upgrade", "--lock", path, "torch==2.2.0"], none
        yield f"plan --fleet {label}", ["plan", "--fleet", path], none
        yield f"lock --fleet {label}", ["lock", "--fleet", path, "-o", "{b}/pylock.out.toml"], none
        yield f"dockerfile --fleet {label}", ["dockerfile", "--fleet", path], none
    for name in ("empty", "blank", "nul.txt", "ctl.txt", "oneline.txt", "binary"):
        if name not in ("empty", "blank"):  # an empty requirements file asks for nothing more, as pip reads it
            yield f"plan -r {name}", ["plan", *T, "-r", f"{{b}}/{name}"], none
        yield f"install --plan {name}", ["install", "--dry-run", "--plan", f"{{b}}/{name}"], none
        yield f"install --lock {name}", ["install", "--dry-run", "--lock", f"{{b}}/{name}"], none
        yield f"check-upgrade --lock {name}", ["check-upgrade", "--lock", f"{{b}}/{name}", "torch==2.2.0"], none
        yield f"plan --fleet {name}", ["plan", "--fleet", f"{{b}}/{name}"], none
    # a good file of the wrong kind
    wrong_kind = {
        "install --plan LOCK": ["install", "--dry-run", "--plan", "{b}/pylock.toml"],
        "install --plan FLEET": ["install", "--dry-run", "--plan", "{b}/kubectl.json"],
        "download --plan LOCK": ["download", "--dry-run", "--dest", "{b}/dl", "--plan", "{b}/pylock.toml"],
        "install --lock PLAN": ["install", "--dry-run", "--lock", "{b}/plan.json"],
        "install --lock UV-PYLOCK": ["install", "--dry-run", "--lock", "{b}/pylock.uv.toml"],
        "install --lock REQS": ["install", "--dry-run", "--lock", "{b}/reqs.txt"],
        "check-upgrade --lock PLAN": ["check-upgrade", "--lock", "{b}/plan.json", "torch==2.2.0"],
        "check-upgrade --lock UV-PYLOCK": ["check-upgrade", "--lock", "{b}/pylock.uv.toml", "torch==2.2.0"],
        "plan --fleet PLAN": ["plan", "--fleet", "{b}/plan.json"],
        "plan --fleet LOCK": ["plan", "--fleet", "{b}/pylock.toml"],
        "lock --fleet PLAN": ["lock", "--fleet", "{b}/plan.json", "-o", "{b}/pylock.out.toml"],
        "dockerfile --fleet LOCK": ["dockerfile", "--fleet", "{b}/pylock.toml"],
        "plan -r LOCK": ["plan", *T, "-r", "{b}/pylock.toml"],
        "plan -r PLAN": ["plan", *T, "-r", "{b}/plan.json"],
        "plan -r PYPROJECT": ["plan", *T, "-r", "{b}/req.toml"],
        "plan -r BINARY": ["plan", *T, "-r", "{b}/binary"],
    }
    for label, argv in wrong_kind.items():
        yield label, argv, none
    # folders where a folder is read or filled
    for label, path in {"a-file": "{b}/existing.txt", "fifo": "{b}/fifo", "dev-zero": "/dev/zero",
                        "under-a-file": "{b}/existing.txt/x", "nul": "{b}/a\x00b"}.items():
        yield f"install --venv {label}", ["install", "--dry-run", "--venv", path, *T[:4]], none
        yield f"install --find-links {label}", ["install", "--dry-run", "--find-links", path, *T[:4]], none
        yield f"download --dest {label}", ["download", "--dry-run", "--dest", path, *T], none
        yield f"recover --venv {label}", ["recover", "--venv", path], none
        yield f"matrix show --matrix-dir {label}", ["matrix", "show", "torch", "--matrix-dir", path], none
        yield f"matrix validate --matrix-dir {label}", ["matrix", "validate", "--matrix-dir", path], none
        yield f"plan --matrix-dir {label}", ["plan", *T, "--matrix-dir", path], none
    yield "matrix validate --matrix-dir EMPTY", ["matrix", "validate", "--matrix-dir", "{b}/folder"], none
    yield "matrix show --matrix-dir BAD-TOML", ["matrix", "show", "torch", "--matrix-dir", "{b}/matrices"], none
    yield "recover --venv EMPTY-FOLDER", ["recover", "--venv", "{b}/venv"], none
    # interpreters
    for label, path in {"folder": "{b}/folder", "dev-zero": "/dev/zero", "not-executable": "{b}/script.sh",
                        "missing": "{b}/missing", "text-file": "{b}/existing.txt", "nul": "{b}/a\x00b",
                        "mega": MEGA}.items():
        yield f"plan --python-exe {label}", ["plan", "--python-exe", path], none
        yield f"detect --python-exe {label}", ["detect", "--python-exe", path], none
        yield f"verify --python-exe {label}", ["verify", "--python-exe", path], none
        yield f"check-upgrade --python-exe {label}", ["check-upgrade", "--python-exe", path, "torch==2.2.0"], none
        yield f"recover --python-exe {label}", ["recover", "--python-exe", path], none
    # outputs
    for label, path in {"folder": "{b}/folder", "fifo": "{b}/fifo", "dev-zero": "/dev/zero",
                        "under-a-file": "{b}/existing.txt/x", "nul": "{b}/a\x00b", "mega": MEGA}.items():
        yield f"lock -o {label}", ["lock", *T, "--no-deps", "-o", path], none
        yield f"dockerfile -o {label}", ["dockerfile", *T, "-o", path], none
    # text and number options
    for label, value in {**BAD_TEXT, "unicode-digits": "２.２８", "negative": "-2.28", "nan": "nan", "inf": "inf",
                         "word": "new"}.items():
        yield f"plan --glibc {label}", ["plan", *T, "--glibc", value], none
        yield f"plan --python {label}", ["plan", *T[:4], "--python", value], none
        yield f"plan --driver {label}", ["plan", "--gpu", "A100", "--driver", value, *T[4:]], none
        yield f"plan --nvcc {label}", ["plan", *T, "--nvcc", value], none
    for label, value in BAD_TEXT.items():
        yield f"plan --gpu {label}", ["plan", "--gpu", value, *T[2:]], none
        yield f"plan --profile {label}", ["plan", *T, "--profile", value], none
        yield f"plan REQ {label}", ["plan", *T, "--", value], none
        yield f"check-upgrade REQ {label}", ["check-upgrade", "--lock", str(GOLDEN / "lock_gpu_source.toml"), value],\
            none
        yield f"check-upgrade --gpu {label}", ["check-upgrade", "--lock", str(GOLDEN / "lock_gpu_source.toml"),
                                               "--gpu", value, "torch==2.2.0"], none
        yield f"verify --expect {label}", ["verify", "--expect", value], none
        yield f"cache clear --package {label}", ["cache", "clear", "--package", value], none
        yield f"matrix refresh --package {label}", ["matrix", "refresh", "--package", value], none
        yield f"matrix refresh --since {label}", ["matrix", "refresh", "--since", value], none
        yield f"matrix show {label}", ["matrix", "show", value], none
    for label, value in {"negative": "-1", "nan": "nan", "inf": "inf", "unicode": "１２０", "mega": "1" * 100000,
                         "zero": "0"}.items():
        yield f"verify --timeout {label}", ["verify", "--timeout", value], none
    # index URLs, from options and from the environment
    for label, url in {**BAD_TEXT, "ftp": "ftp://host/simple", "no-host": "https://", "relative-file": "file:x",
                       "plain-http": "http://mirror.example/simple", "option": "--index-url=x"}.items():
        if label != "plain-http":  # plan and check-upgrade only read which versions it lists: http is allowed there
            yield f"plan --index-url {label}", ["plan", *T, "--index-url", url], none
            yield f"check-upgrade --index-url {label}", ["check-upgrade", "--lock", str(GOLDEN / "lock_gpu_source.toml"),
                                                         "--index-url", url, "torch==2.2.0"], none
        yield f"lock --torch-index-url {label}", ["lock", *T, "-o", "{b}/pylock.out.toml", "--torch-index-url", url], none
        yield f"dockerfile --index-url {label}", ["dockerfile", *T, "--index-url", url], none
        yield f"install --torch-index-url {label}", ["install", "--dry-run", *T[:4], "--torch-index-url", url], none
        yield f"matrix refresh --index {label}", ["matrix", "refresh", "--index", url], none
        if "\x00" in url:
            continue  # no process environment can hold a NUL
        for var in ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL"):
            yield f"lock ${var} {label}", ["lock", *T, "-o", "{b}/pylock.out.toml"], {var: url}
        yield f"dockerfile $GPUSTACK_TORCH_INDEX_URL {label}", ["dockerfile", *T], {"GPUSTACK_TORCH_INDEX_URL": url}
    # the cache folder from the environment, where a command reads the cache itself
    for label, path in {"a-file": "{b}/existing.txt", "fifo": "{b}/fifo", "dev-zero": "/dev/zero",
                        "relative": "cache", "mega": MEGA}.items():
        yield f"cache list $GPUSTACK_CACHE_DIR {label}", ["cache", "list"], {"GPUSTACK_CACHE_DIR": path}
        yield f"cache clear $GPUSTACK_CACHE_DIR {label}", ["cache", "clear"], {"GPUSTACK_CACHE_DIR": path}
        yield f"plan $GPUSTACK_CACHE_DIR {label}", ["plan", *T], {"GPUSTACK_CACHE_DIR": path}
    # one value given twice, differently: which one did the user mean?
    for flag, a, b in (("--driver", "535.104.05", "550.54.14"), ("--python", "3.11", "3.12"),
                       ("--platform", "linux_x86_64", "linux_aarch64"), ("--glibc", "2.28", "2.31"),
                       ("--index-url", "https://a.example/simple", "https://b.example/simple")):
        yield f"plan {flag} twice", ["plan", *T, flag, a, flag, b], none
    yield "lock -o twice", ["lock", *T, "-o", "{b}/pylock.a.toml", "-o", "{b}/pylock.b.toml"], none
    yield "install --plan twice", ["install", "--dry-run", "--plan", "{b}/plan.json", "--plan", "{b}/empty"], none
    yield "verify --timeout twice", ["verify", "--timeout", "10", "--timeout", "20"], none
    yield "check-upgrade --lock twice", ["check-upgrade", "--lock", "{b}/pylock.toml", "--lock", "{b}/pylock.uv.toml",
                                         "torch==2.2.0"], none


def _every_option_rows() -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """Every value-taking option of every command (as tests/test_cli_options.py lists them), given a 1 MB value, a
    blank one and one holding a NUL, beside what the command needs besides it."""
    from test_cli_options import _every_value_option

    needs = {"download": ["--dest", "{b}/dl", *T], "check-upgrade": ["--lock", "{b}/pylock.toml", "torch==2.2.0"],
             "matrix show": ["torch"], "install": ["--dry-run", *T[:4]], "plan": T, "lock": [*T, "--no-deps"],
             "dockerfile": T}
    for command, option in _every_value_option():
        rest = list(needs.get(command, []))
        if option in rest:  # the option under test replaces the one the command needs
            i = rest.index(option)
            del rest[i:i + 2]
        for label, value in {"mega": MEGA, "blank": "  ", "nul": "a\x00b"}.items():
            yield f"{command} {option} {label} (every option)", [*command.split(), option, value, *rest], {}


ROWS = list(_rows()) + list(_every_option_rows())


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzzbox")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPUSTACK_CACHE_DIR", str(root.parent / (root.name + "-cache")))  # warmed here: the rows read it
        from resolver import matrix

        matrix.load.cache_clear()  # read (and cached) through this cache folder, whatever ran before in this process
        _sandbox(root)
    return root


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang()


def _fill(value: str, box: Path) -> str:
    return value.replace("{b}", str(box))


def _options_of(argv: list[str]) -> set[str]:
    """Return the options of the (sub)command ``argv`` runs."""
    import click

    ctx = click.Context(main)
    command: click.Command = main
    for word in argv:
        sub = command.get_command(ctx, word) if isinstance(command, click.Group) else None
        if sub is None:
            break
        command = sub
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def _flag(row_id: str, argv: list[str]) -> str | None:
    """Return the option a row feeds a bad value: the first option its id names (``install --lock folder``)."""
    return next((w for w in row_id.split() if w.startswith("-") and w in argv), None)


@pytest.mark.parametrize(("argv", "env", "option"), [pytest.param(a, e, _flag(i, a), id=i) for i, a, e in ROWS])
def test_bad_input(box: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str],
                   option: str | None) -> None:
    cache = box.parent / (box.name + "-cache")
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(cache))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    for var in [v for v in os.environ if v.startswith(("PIP_", "UV_")) and v not in ("PIP_CONFIG_FILE", "UV_NO_CONFIG")]:
        monkeypatch.delenv(var)
    monkeypatch.delenv("GPUSTACK_TORCH_INDEX_URL", raising=False)
    monkeypatch.chdir(box)
    if "GPUSTACK_CACHE_DIR" in env:  # the matrix is read once a process: read it again, through the cache
        from resolver import matrix

        matrix.load.cache_clear()
    before = fuzz_cases.snapshot(box), fuzz_cases.snapshot(cache) if cache.exists() else {}
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        result = CliRunner().invoke(main, [_fill(a, box) for a in argv], env={k: _fill(v, box) for k, v in env.items()})
    except _Hang:
        pytest.fail(f"no answer within {TIMEOUT_S} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, _Hang):
        pytest.fail(f"no answer within {TIMEOUT_S} s")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail(f"raised {type(result.exception).__name__}: {result.exception}")
    verdict = fuzz_cases.verdict(result.exit_code, result.stdout, result.stderr)
    assert verdict == "clean", (verdict, result.stderr[-600:], result.stdout[-300:])
    assert len(result.stderr) < 1000, "the line quotes the whole input"
    if "--allow-insecure-index" in result.stderr:  # a next step the command has
        assert "--allow-insecure-index" in _options_of(argv), "the line points to an option the command lacks"
    for name in env:
        assert name in result.stderr, f"the line does not name {name}"
    if option is not None:  # the option, or the path given to it (a matrix folder's missing file names its path)
        given = _fill(argv[argv.index(option) + 1], box)
        assert option in result.stderr or given[:60] in result.stderr, f"the line names neither {option} nor {given}"
    after = fuzz_cases.snapshot(box), fuzz_cases.snapshot(cache) if cache.exists() else {}
    assert after == before
