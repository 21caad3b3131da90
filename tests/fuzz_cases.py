"""The bounded CLI fuzz of issue 12: malformed inputs for every subcommand, each expected to give exit 2, one line on
stderr, no traceback, and no file written or replaced. Shared by tests/test_fuzz_cli.py and bench/fuzz_cli.py.

``sandbox(root)`` lays out the files the inputs point at (a regular file, a link to one, a FIFO, a folder, files
that are not UTF-8 or not the right shape); ``cases(root)`` returns ``(label, argv)`` pairs; ``snapshot(root)``
records every entry's type, inode, mode, size and mtime so a run that writes or replaces anything is caught.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

GOLDEN_LOCK = Path(__file__).parent / "golden" / "lock_gpu_source.toml"
TARGET = ["--gpu", "A100", "--driver", "535.104.05", "--python", "3.11", "--platform", "linux_x86_64"]

DRIVERS = ["５３５.104.05", "٥٣٥.104.05", "535.104.05.1.2", "-535", "", " ", "535..1", "1" * 5000, "nan", "535\n",
           "535.104.05\x00", "v535", "535,104"]
PYTHONS = ["3", "3.x", "2.7", "３.１１", "3.11.0.0.0", "3." + "1" * 5000, "", "3.11\n3.12"]
GPUS = ["V100\nSXM2", "A100\x1b[2J", "", " ", "x" * 500, "Not A Real GPU 9000", "８.６", "sm_" + "9" * 5000, "T4\r",
        "\u2028A100"]
NVCCS = ["twelve", "12." + "4" * 5000, "１２.４", "-12"]
REQUIREMENTS = ["--target=/x", "-r/etc/passwd", "torch==" + "1" * 4400, "torch\n--index-url=http://evil", "a b c",
                "torch>=", "x[", "torch==2.*.1", "\x00", "torch @ ", "🔥", "torch;;", "xformers<<1"]
TIMEOUTS = ["nan", "inf", "-inf", "-1", "0", "0.0", "1e400", "１２０", "", "12s", "1" * 5000, "86401"]

_SHAPES: list[Any] = [[], None, 3, "plan", {"steps": {}}, {"target": []}, {"target": {"gpus": "A100"}},
                      {"target": {"driver": 535}}, {"target": {"python": ["3.11"]}}, {"target": {"platform": "vax"}},
                      {"target": {}, "steps": [None]}, {"target": {}, "steps": [{"action": "install"}]},
                      {"target": {}, "steps": [{"action": "erase", "package": "x", "requirement": "x"}]},
                      {"target": {}, "steps": [{"action": "install", "package": "x", "requirement": "--target=/x"}]},
                      {"target": {}, "steps": [{"action": "install", "package": "x", "requirement": "x", "url": "a\nb"}]},
                      {"target": {}, "steps": [{"action": "install", "package": "x", "requirement": "x", "index_url": "ftp://x"}]},
                      {"target": {}, "steps": [{"action": "build", "package": "x", "requirement": "x",
                                  "env": {"PYTHONPATH": "/tmp"}}]},
                      {"target": {}, "steps": [{"action": "build", "package": "x", "requirement": "x", "env": {"MAX_JOBS": 4}}]},
                      {"target": {}, "steps": [{"action": "install", "package": "x", "requirement": "x", "no_deps": "yes"}]},
                      {"target": {}, "steps": [{"action": "install", "package": "x", "requirement": "x", "constraints": "torch"}]},
                      {"packages": [{"name": "torch", "version": None, "method": "wheel"}]},
                      {"packages": [{"name": "torch", "version": "1", "method": "wheel", "arch_list": "9.x"}]},
                      {"other_requirements": ["--pre"]}, {"notes": [1]}]


def _lock_mutations() -> list[Callable[[dict[str, Any]], None]]:
    def at(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
        def mutate(d: dict[str, Any]) -> None:
            cur: Any = d
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = value
        return mutate

    tool = ("packages", 1, "tool", "gpustack")
    target = ("tool", "gpustack", "target")
    return [
        at(tool + ("arch_list",), "9.x"), at(tool + ("arch_list",), 86), at(tool + ("order",), "first"),
        at(tool + ("order",), "1" * 5000), at(tool + ("build_env",), {"PYTHONPATH": "/tmp"}),
        at(tool + ("build_env",), {"MAX_JOBS": "$(id)"}), at(tool + ("build_env",), "x"), at(tool, 3),
        at(("packages", 0, "wheels", 0, "url"), "https://x/y.whl\n--index-url https://evil"),
        at(("packages", 0, "wheels", 0, "url"), "-https://x"), at(("packages", 0, "index"), "not a url"),
        at(target + ("python",), 3), at(target + ("platform",), "vax"), at(target + ("gpus",), "A100"),
        at(target + ("gpus",), [{"name": "A100", "compute_capability": 8}]), at(target + ("min_driver",), "５３５"),
        at(("tool", "gpustack", "missing"), "x"), at(("tool", "gpustack", "missing"), [{"name": 1}]),
        at(("tool", "gpustack", "notes"), [1]), at(("environments",), ["bad marker"]), at(("lock-version",), "9"),
    ]


def sandbox(root: Path) -> None:
    """Create the files the fuzz inputs point at under ``root``."""
    (root / "existing.txt").write_text("keep me\n")
    (root / "target.toml").write_text("keep me too\n")
    (root / "link.toml").symlink_to(root / "target.toml")
    os.mkfifo(root / "fifo")
    (root / "folder").mkdir()
    (root / "latin1.txt").write_bytes(b"xformers\n\xe9t\xe9\n")
    (root / "many.txt").write_text("".join(f"pkg{i}\n" for i in range(20000)))
    (root / "options.txt").write_text("--index-url http://evil/simple\n")
    (root / "not.json").write_text("{not json")
    (root / "not.toml").write_text("= = =")
    (root / "latin1.toml").write_bytes(b"name = \"\xe9\"\n")
    for i, shape in enumerate(_SHAPES):
        (root / f"plan{i}.json").write_text(json.dumps(shape))
    for i, mutate in enumerate(_lock_mutations()):
        data = tomllib.loads(GOLDEN_LOCK.read_text())
        mutate(data)
        (root / f"lock{i}.toml").write_text(tomli_w.dumps(data))


def cases(root: Path) -> list[tuple[str, list[str]]]:
    """Return the (label, argv) pairs, argv without the program name. Paths point into ``sandbox(root)``."""
    out: list[tuple[str, list[str]]] = []
    t = TARGET

    def add(label: str, argv: list[str]) -> None:
        out.append((label, argv))

    def target_with(flag: str, value: str) -> list[str]:
        i = t.index(flag)
        return [*t[:i + 1], value, *t[i + 2:]]

    for cmd in ("plan", "lock", "dockerfile"):
        for v in DRIVERS:
            add(f"{cmd} --driver", [cmd, *target_with("--driver", v)])
        for v in PYTHONS[:4]:
            add(f"{cmd} --python", [cmd, *target_with("--python", v)])
    for v in PYTHONS[4:]:
        add("plan --python", ["plan", *target_with("--python", v)])
    for v in GPUS:
        add("plan --gpu", ["plan", *target_with("--gpu", v)])
    for v in GPUS[:4]:
        add("dockerfile --gpu", ["dockerfile", *target_with("--gpu", v)])
    for v in NVCCS:
        add("plan --nvcc", ["plan", *t, "--nvcc", v])
    for v in REQUIREMENTS:
        add("plan REQ", ["plan", *t, "--", v])
    for v in REQUIREMENTS[:6]:
        add("lock REQ", ["lock", *t, "-o", str(root / "pylock.out.toml"), "--", v])
        add("install --dry-run REQ", ["install", "--dry-run", *t[:4], "--", v])
        add("check-upgrade REQ", ["check-upgrade", "--lock", str(GOLDEN_LOCK), "--", v])
    for name in ("fifo", "folder", "latin1.txt", "missing.txt", "many.txt", "options.txt"):
        add("plan -r", ["plan", *t, "-r", str(root / name)])
    add("download -r", ["download", "--dry-run", "--dest", str(root / "dl"), *t, "-r", str(root / "fifo")])
    add("plan --profile", ["plan", *t, "--profile", "nope\nx"])
    add("plan --platform", ["plan", *target_with("--platform", "vax")])
    add("plan --bogus", ["plan", "--bogus"])
    add("plan --gpu --cpu", ["plan", *t, "--cpu"])
    for i in range(len(_SHAPES)):
        add("install --plan", ["install", "--dry-run", "--plan", str(root / f"plan{i}.json")])
    for i in (0, 3, 13, 16):
        add("install --plan (no dry run)", ["install", "--plan", str(root / f"plan{i}.json")])
        add("download --plan", ["download", "--dry-run", "--dest", str(root / "dl"), "--plan", str(root / f"plan{i}.json")])
    for name in ("fifo", "folder", "not.json", "latin1.txt", "missing.json"):
        add("install --plan FILE", ["install", "--dry-run", "--plan", str(root / name)])
    for i in range(len(_lock_mutations())):
        add("install --lock", ["install", "--dry-run", "--lock", str(root / f"lock{i}.toml")])
    for i in (0, 4, 8):
        add("check-upgrade --lock", ["check-upgrade", "--lock", str(root / f"lock{i}.toml"), "torch==2.2.0"])
    for name in ("fifo", "folder", "not.toml", "latin1.toml", "missing.toml"):
        add("install --lock FILE", ["install", "--dry-run", "--lock", str(root / name)])
        add("check-upgrade --lock FILE", ["check-upgrade", "--lock", str(root / name), "torch==2.2.0"])
    for v in ("５３５", "nan", "1" * 5000):
        add("check-upgrade --driver", ["check-upgrade", "--lock", str(GOLDEN_LOCK), "--driver", v, "torch==2.2.0"])
    for v in TIMEOUTS:
        add("verify --timeout", ["verify", "--timeout", v])
    add("verify --expect", ["verify", "--expect", "sdpa\nx"])
    for cmd in ("lock", "dockerfile"):
        for name in ("folder", "fifo", "nodir/out"):
            add(f"{cmd} -o", [cmd, *t, "-o", str(root / name)])
        add(f"{cmd} -o /dev/null", [cmd, *t, "-o", "/dev/null"])
    add("download --dest", ["download", "--dest", str(root / "existing.txt"), *t])
    add("install --find-links", ["install", "--dry-run", "--find-links", str(root / "existing.txt"), *t[:4]])
    add("install --offline", ["install", "--dry-run", "--offline", *t[:4]])
    add("install --installer", ["install", "--installer", "conda", *t[:4]])
    add("matrix show", ["matrix", "show", "nope\nx"])
    return out


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """Return every entry under ``root`` (links not followed) with its type, inode, mode, size and mtime."""
    found: dict[str, tuple[int, int, int, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            found[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_mode, st.st_size,
                                               st.st_mtime_ns)
    return found


def verdict(rc: int | None, stdout: str, stderr: str) -> str:
    """Return ``"clean"`` for exit 2 with one ``gpustack:`` line on stderr, else what is wrong."""
    if rc is None:
        return "hang"
    if "Traceback" in stdout + stderr:
        return "traceback"
    lines = stderr.strip().splitlines()
    if rc != 2:
        return f"exit {rc}"
    if len(lines) != 1 or not lines[0].startswith("gpustack: "):
        return f"{len(lines)} lines on stderr"
    return "clean"
