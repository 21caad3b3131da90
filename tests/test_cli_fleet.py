"""``--fleet`` and ``--per-class`` on plan, lock and dockerfile, through the real CLI (fixtures: tests/fixtures/fleet).

Only the network is replaced (the index pages a lock reads its hashes from); everything else runs as shipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from packaging.pylock import Pylock

from resolver.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "fleet"
K8S = str(FIXTURES / "kubectl-nodes.json")
SLURM = str(FIXTURES / "scontrol-nodes.json")


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_plan_for_a_kubernetes_fleet_says_what_it_read_and_what_limits_it() -> None:
    result = run("plan", "--fleet", K8S, "--python", "3.11", "xformers")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "fleet: kubernetes nodes from" in out and "7 GPU nodes in 4 classes" in out
    assert "read: nvidia.com/cuda.driver.major, nvidia.com/cuda.driver.minor" in out
    assert "class a100-sxm4-40gb-d535-mig: NVIDIA A100-SXM4-40GB, 56 MIG devices on 1 node" in out
    assert "skipped ip-10-0-1-17.ec2.internal: no NVIDIA GPU" in out
    assert "driver 535.216.01; Python 3.11; linux_x86_64" in out
    assert "Tesla V100-SXM2-16GB nodes make xformers 0.0.35 a source build (without them: a wheel)" in out


def test_plan_json_carries_the_fleet() -> None:
    result = run("plan", "--fleet", SLURM, "--driver", "535.104.05", "--python", "3.12", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True and data["target"]["driver"] == "535.104.05"
    assert [c["id"] for c in data["fleet"]["classes"]] == ["v100", "a100", "h100"]
    assert [s["node"] for s in data["fleet"]["skipped"]] == ["login01", "cpu001", "cpu002"]
    assert [g["compute_capability"] for g in data["target"]["gpus"]] == ["7.0", "8.0", "9.0"]
    assert "  note: driver 535.104.05 (--driver) for the classes whose nodes report none" in data["detection"]
    # The fleet's own notes say the same, not "pass --driver" when it was passed.
    assert "driver 535.104.05 (--driver) for the classes whose nodes report none" in data["fleet"]["notes"]
    assert not [n for n in data["fleet"]["notes"] if "pass --driver" in n]


def test_plan_per_class_json_has_one_plan_or_refusal_per_class() -> None:
    result = run("plan", "--fleet", K8S, "--per-class", "--python", "3.11", "--json", "flash-attn")
    assert result.exit_code == 1  # two classes cannot run flash-attn: every class is still answered
    data = json.loads(result.output)
    assert data["ok"] is False
    got = {c["class"]["id"]: c for c in data["classes"]}
    assert got["v100-sxm2-16gb-d535"]["ok"] is False
    assert [p["name"] for p in got["h100-80gb-hbm3-d550"]["plan"]["packages"]] == ["torch", "flash-attn"]
    assert got["h100-80gb-hbm3-d550"]["plan"]["target"]["driver"] == "550.127.05"


def test_per_class_build_is_sized_like_a_single_plan_for_that_class() -> None:
    # A class's source build gets the MAX_JOBS a plan for that machine alone gets (this machine's cores and RAM).
    per = json.loads(run("plan", "--fleet", K8S, "--per-class", "--python", "3.11", "--json", "flash-attn").output)
    h100 = next(c for c in per["classes"] if c["class"]["id"] == "h100-80gb-hbm3-d550")["plan"]
    alone = run("plan", "--gpu", "H100", "--driver", "550.127.05", "--python", "3.11", "--json", "flash-attn")
    assert alone.exit_code == 0, alone.output
    jobs = [[s["env"]["MAX_JOBS"] for s in p["steps"] if s["action"] == "build"] for p in (h100, json.loads(alone.output))]
    assert jobs[0] and jobs[0] == jobs[1]


def test_refusal_names_classes_and_their_own_stacks() -> None:
    result = run("plan", "--fleet", K8S, "--python", "3.11", "flash-attn")
    assert result.exit_code == 1
    assert "no stack serves Tesla V100-SXM2-16GB and Tesla T4 nodes even on their own" in result.output
    assert "NVIDIA H100 80GB HBM3 nodes alone: torch" in result.output
    assert "pass --per-class" in result.output


@pytest.mark.parametrize("args, message", [
    (["--fleet", K8S, "--gpu", "T4"], "--fleet with --gpu: the fleet's nodes give the GPUs and platform"),
    (["--fleet", K8S, "--platform", "linux_x86_64"], "--fleet with --platform"),
    (["--per-class", "--gpu", "T4"], "--per-class without --fleet"),
    (["--fleet", K8S, "--driver", "550.54.15"], "--driver with --fleet: the fleet's labels give every node's driver"),
    (["--fleet", "slurm"], "--fleet slurm: scontrol is not on PATH"),
    (["--fleet", str(FIXTURES / "README.md")], "README.md: not JSON (line 1)"),
    (["--fleet", str(FIXTURES)], "is a folder"),
    (["--fleet", K8S, "torch=="], "torch=="),
    (["--fleet", K8S, "--python-exe", sys.executable], "--fleet with --python-exe: an interpreter on this machine"),
])
def test_bad_fleet_input_is_one_line_exit_2(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = run("plan", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_fifo_fleet_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "nodes.json"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "resolver", "plan", "--fleet", str(fifo)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "not a regular file" in done.stderr and done.stdout == ""


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver import hashes, lock_resolve

    real_lookup = hashes.lookup
    monkeypatch.setattr(lock_resolve, "resolve", lambda plan, constraints, **kw: {})
    monkeypatch.setattr(lock_resolve, "check_sources", lambda *a, **kw: None)  # its probe of the indexes, too
    monkeypatch.setattr(hashes, "fetch_text", lambda url: None)
    monkeypatch.setattr(hashes, "lookup", lambda plan, fetch=None, known=None: real_lookup(
        plan, lambda url: None, known=known))


def test_lock_per_class_writes_one_valid_pylock_per_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver.lock import loads

    _no_network(monkeypatch)
    result = run("lock", "--fleet", K8S, "--per-class", "--python", "3.11", "xformers",
                 "-o", str(tmp_path / "pylock.toml"))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["pylock.a100-sxm4-40gb-d535-mig.toml", "pylock.h100-80gb-hbm3-d550.toml",
                     "pylock.t4-d535.toml", "pylock.v100-sxm2-16gb-d535.toml"]
    for name in names:
        text = (tmp_path / name).read_text()
        Pylock.from_dict(tomllib.loads(text))  # packaging's PEP 751 reader accepts it
    v100 = loads((tmp_path / "pylock.v100-sxm2-16gb-d535.toml").read_text())
    assert [str(g.compute_capability) for g in v100.target.gpus] == ["7.0"]
    h100 = loads((tmp_path / "pylock.h100-80gb-hbm3-d550.toml").read_text())
    assert "xformers" in {p.name for p in (*h100.packages, *h100.missing)}


def test_lock_per_class_with_a_named_lock_writes_names_uv_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``-o pylock.prod.toml`` gives ``pylock.prod-<class>.toml``: PEP 751 allows no dot in the name, and uv, the real
    consumer, refuses ``pylock.prod.t4-d535.toml`` ("not a valid PEP 751 filename")."""
    from packaging.pylock import is_valid_pylock_path

    from resolver import lock_resolve

    _no_network(monkeypatch)
    result = run("lock", "--fleet", K8S, "--per-class", "--python", "3.11", "--no-deps",
                 "-o", str(tmp_path / "pylock.prod.toml"))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "pylock.prod-t4-d535.toml" in names and len(names) == 4
    assert all(is_valid_pylock_path(tmp_path / n) for n in names)
    uv = lock_resolve.find_uv()
    assert uv is not None
    env = lock_resolve.isolated_env(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_OFFLINE="1")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], env=env, check=True, capture_output=True)
    for name in names:
        done = subprocess.run([uv, "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"), "-r",
                               str(tmp_path / name)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr  # uv read it as a PEP 751 lock


def test_lock_per_class_refuses_an_output_name_that_is_not_pep_751(tmp_path: Path) -> None:
    result = run("lock", "--fleet", K8S, "--per-class", "--python", "3.11", "--no-deps", "-o", str(tmp_path / "prod.toml"))
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "prod.toml" in result.output and "pylock.<name>.toml" in result.output
    assert list(tmp_path.iterdir()) == []


def test_lock_per_class_refuses_before_writing_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_network(monkeypatch)
    result = run("lock", "--fleet", K8S, "--per-class", "--python", "3.11", "flash-attn",
                 "-o", str(tmp_path / "pylock.toml"))
    assert result.exit_code == 1
    assert "class v100-sxm2-16gb-d535 (Tesla V100-SXM2-16GB): flash-attn needs compute capability 8.0" in result.output
    assert list(tmp_path.iterdir()) == []


def test_one_lock_for_the_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver.lock import loads

    _no_network(monkeypatch)
    out = tmp_path / "pylock.toml"
    result = run("lock", "--fleet", K8S, "--python", "3.11", "-o", str(out))
    assert result.exit_code == 0, result.output
    locked = loads(out.read_text())
    assert [str(g.compute_capability) for g in locked.target.gpus] == ["7.0", "7.5", "8.0", "9.0"]


@pytest.mark.parametrize("command", [["lock", "--no-deps"], ["dockerfile"]])
def test_lock_and_dockerfile_refuse_a_python_exe_with_a_fleet_and_write_nothing(command: list[str],
                                                                                 tmp_path: Path) -> None:
    """--python-exe was dropped without a word (the nodes' Python was this machine's default)."""
    out = tmp_path / "out"
    result = run(*command, "--fleet", K8S, "--python-exe", sys.executable, "-o", str(out))
    assert result.exit_code == 2 and "--fleet with --python-exe" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_dockerfile_fleet_one_image_per_class_and_k8s_affinity(tmp_path: Path) -> None:
    result = run("dockerfile", "--fleet", K8S, "--python", "3.11", "--per-class", "-o", str(tmp_path / "Dockerfile"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Dockerfile.a100-sxm4-40gb-d535-mig", "Dockerfile.h100-80gb-hbm3-d550", "Dockerfile.t4-d535",
        "Dockerfile.v100-sxm2-16gb-d535"]
    h100 = (tmp_path / "Dockerfile.h100-80gb-hbm3-d550").read_text()
    assert "#   NVIDIA H100 80GB HBM3 x16 on 2 nodes" in h100 and "Tesla T4 x4" not in h100
    for written in tmp_path.iterdir():  # the build command each file prints builds that file, not ./Dockerfile
        text = written.read_text()
        assert f"docker buildx build --platform linux/amd64 -f {written.name} .\n" in text, written.name
        assert f"build it with docker buildx build --platform linux/amd64 -f {written.name}\"" in text
        assert "--platform linux/amd64 ." not in text
    k8s = run("dockerfile", "--fleet", K8S, "--python", "3.11", "--format", "k8s")
    assert k8s.exit_code == 0
    assert k8s.output.count("- matchExpressions:") == 4 and "node affinity for the fleet's image" in k8s.output
    per = run("dockerfile", "--fleet", K8S, "--python", "3.11", "--format", "k8s", "--per-class")
    assert per.exit_code == 0 and per.output.count("---\n") == 3
    assert "node affinity for the image of Dockerfile.t4-d535" in per.output


@pytest.mark.parametrize("args, message", [
    (["--format", "k8s", "--gpu", "T4"], "--format k8s needs --fleet"),
    (["--format", "k8s", "--fleet", SLURM], "is slurm, without Kubernetes node labels"),
    (["--per-class", "--fleet", K8S], "--per-class writes one file per class: pass -o FILE"),
])
def test_dockerfile_fleet_bad_input(args: list[str], message: str) -> None:
    result = run("dockerfile", "--python", "3.11", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_plan_without_fleet_never_imports_the_fleet_modules() -> None:
    code = ("import sys; from click.testing import CliRunner; from resolver.cli import main; "
            "r = CliRunner().invoke(main, ['plan', '--gpu', 'T4', '--driver', '535.104.05', '--python', '3.11']); "
            "assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.startswith('resolver.fleet') or m == 'resolver.dockerfile_fleet'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_docs_quote_the_fleet_summary_as_printed() -> None:
    """docs/fleet.md shows real output: the summary lines of the walkthrough are what the command prints."""
    doc = (Path(__file__).parent.parent / "docs" / "fleet.md").read_text()
    result = run("plan", "--fleet", K8S, "--python", "3.11", "xformers")
    summary = [line.replace(K8S, "nodes.json") for line in result.output.splitlines()
               if line.startswith(("fleet:", "  read:", "  class ", "  skipped "))]
    assert len(summary) == 9
    for line in summary:
        assert line in doc, line


def _centos_fleet(tmp_path: Path) -> str:
    """The Kubernetes fixture with every node on CentOS 7 (glibc 2.17, matrices/platforms.toml)."""
    path = tmp_path / "centos.json"
    path.write_text(Path(K8S).read_text().replace("Ubuntu 22.04.4 LTS", "CentOS Linux 7 (Core)"))
    return str(path)


@pytest.mark.parametrize("fleet, given, glibc", [
    ("centos", [], ["--glibc", "2.17"]),  # the nodes' OS names their glibc: as one machine probed there
    ("slurm", ["--driver", "550.54.15"], []),  # no OS: the assumption (2.28) and its note, as one described machine
])
def test_each_class_is_planned_as_one_machine_of_that_class_is(fleet: str, given: list[str], glibc: list[str],
                                                              tmp_path: Path) -> None:
    # A fleet class is a described target: it gets the glibc `gpustack plan` gives that node, so flash-attn's GitHub
    # wheel (built on Ubuntu 22.04, glibc 2.35) is never planned for a CentOS 7 node.
    source = _centos_fleet(tmp_path) if fleet == "centos" else SLURM
    request = ["--python", "3.11", "flash-attn", "--prefer-wheels", "--json"]
    result = run("plan", "--fleet", source, "--per-class", *given, *request)
    data = json.loads(result.output)
    planned = [c for c in data["classes"] if "plan" in c]
    assert len(planned) == 2  # A100 and H100 (V100 and T4 cannot run flash-attn)
    for c in planned:
        node = c["class"]
        driver = node["driver"] or "550.54.15"
        alone = run("plan", "--gpu", node["name"], "--driver", driver, "--platform", node["platform"], *glibc, *request)
        assert alone.exit_code == 0, alone.output
        one = json.loads(alone.output)
        assert c["plan"]["packages"] == one["packages"] and c["plan"]["steps"] == one["steps"], node["id"]
        flash = next(p for p in one["packages"] if p["name"] == "flash-attn")
        assert flash["method"] == "source"  # the ubuntu-22.04 wheel needs glibc 2.35
        if fleet == "slurm":
            assert any(n.startswith("glibc not given: assumed 2.28") for n in c["plan"]["notes"])
        else:
            assert "glibc 2.17: the nodes' OS (CentOS Linux 7 (Core); matrices/platforms.toml); pass " \
                   "--glibc X.Y for another" in c["plan"]["notes"]


def test_one_fleet_lock_says_whose_glibc_it_is_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver.lock import loads

    _no_network(monkeypatch)
    pylock = tmp_path / "pylock.toml"
    result = run("lock", "--fleet", _centos_fleet(tmp_path), "--python", "3.11", "xformers", "-o", str(pylock))
    assert result.exit_code == 0, result.output
    locked = loads(pylock.read_text())
    assert locked.glibc == "2.17"
    assert "glibc 2.17: the nodes' OS (CentOS Linux 7 (Core); matrices/platforms.toml), the lowest of the " \
           "fleet; pass --glibc X.Y for another" in locked.notes


def test_class_lines_say_the_driver_the_class_was_planned_for() -> None:
    result = run("plan", "--fleet", SLURM, "--driver", "550.54.15", "--python", "3.11", "--per-class", "xformers")
    assert result.exit_code == 0, result.output
    assert "driver unknown" not in result.output
    assert "  class v100: V100 x8 on 1 node (compute capability 7.0, driver 550.54.15 (--driver), linux_x86_64)" \
        in result.output.splitlines()
    assert "Class v100: V100 x8 on 1 node (compute capability 7.0, driver 550.54.15 (--driver), linux_x86_64)" \
        in result.output.splitlines()
    bare = run("plan", "--fleet", SLURM, "--python", "3.11", "--per-class", "xformers")
    assert "  class v100: V100 x8 on 1 node (compute capability 7.0, driver unknown, linux_x86_64)" \
        in bare.output.splitlines()


def test_a_fleet_images_header_says_the_driver_its_classes_were_planned_for(tmp_path: Path) -> None:
    # Slurm reports no driver: the classes are planned for --driver, and the image's header says so, as plan's lines do
    v100 = "V100 x8 on 1 node (compute capability 7.0, driver 550.54.15 (--driver), linux_x86_64)"
    one = run("dockerfile", "--fleet", SLURM, "--driver", "550.54.15", "--python", "3.11", "xformers", "-o", "-")
    assert one.exit_code == 0, one.output
    assert f"#   {v100}" in one.stdout.splitlines() and "driver unknown" not in one.stdout
    per = run("dockerfile", "--fleet", SLURM, "--driver", "550.54.15", "--python", "3.11", "--per-class", "xformers",
              "-o", str(tmp_path / "Dockerfile"))
    assert per.exit_code == 0, per.output
    texts = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert len(texts) == 3 and not any("driver unknown" in t for t in texts.values()), sorted(texts)
    assert sum(f"#   {v100}" in t.splitlines() for t in texts.values()) == 1


@pytest.mark.parametrize("source, given", [(K8S, []), (SLURM, ["--driver", "550.54.15"])])
def test_a_bare_relock_of_a_fleet_lock_locks_each_class_for_what_it_was_locked_for(
        source: str, given: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The lock records its fleet ([tool.gpustack.fleet]: each class's GPU, driver, platform, OS; the --driver given);
    # a re-lock with no new request plans that fleet again, not every GPU at the fleet's lowest driver.
    from resolver.lock import loads

    _no_network(monkeypatch)
    pylock = tmp_path / "pylock.toml"
    first = run("lock", "--fleet", source, *given, "--python", "3.11", "--no-deps", "xformers", "-o", str(pylock))
    assert first.exit_code == 0, first.output
    made = pylock.read_text()
    locked = loads(made)
    assert locked.fleet is not None and len(locked.fleet["classes"]) == (4 if source == K8S else 3)
    again = run("lock", "-o", str(pylock))
    assert again.exit_code == 0, again.output
    assert "re-locking" in again.output and "the fleet it was locked for" in again.output
    assert pylock.read_text() == made  # the same classes, drivers, notes and stack
    if source == K8S:
        assert "driver floor 535.216.01: the lowest in the fleet (Tesla V100-SXM2-16GB, Tesla T4 and NVIDIA " \
               "A100-SXM4-40GB nodes)" in locked.notes
        assert "NVIDIA H100 80GB HBM3 driver 550.127.05" in again.output
    else:
        assert "class h100: H100 x16 on 2 nodes (compute capability 9.0, driver 550.54.15 (--driver)" in again.output


def test_a_fleet_record_that_is_not_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_network(monkeypatch)
    pylock = tmp_path / "pylock.toml"
    assert run("lock", "--fleet", K8S, "--python", "3.11", "--no-deps", "xformers", "-o", str(pylock)).exit_code == 0
    bad = pylock.read_text().replace('compute_capability = "9.0"\ndriver', 'compute_capability = "nine"\ndriver')
    assert bad != pylock.read_text()
    from resolver.errors import BadInput
    from resolver.lock import loads

    with pytest.raises(BadInput, match=r"fleet\.classes\[3\]\.compute_capability"):
        loads(bad)  # what every reader of the lock (re-lock, install --lock, check-upgrade) reads it with
