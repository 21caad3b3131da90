"""The one reader of a target interpreter: ``read_target(python_exe, mode) -> TargetFacts``.

Every module that needs to know what another Python is or has (``detect``, ``build``, ``envstate``, ``installers``)
runs the same child script, ``_child/probe_env.py --mode MODE``, through ``probe_output``, so the interpreter is
found, run, timed out and refused in one way, and the platform tag is computed once (in the child).

* ``full``: what ``gpustack detect`` shows (``TargetFacts.env``); imports torch in the child.
* ``light``: for a source build and for choosing pip: torch's ``version.py`` text, missing build tools, pip present.
* ``installed``: for snapshots and an install's after-step checks: each distribution with its origin and metadata
  folder, a killed pip's debris, the site-packages listing and torch's ``version.py`` text (nothing imported).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from resolver._subprocess import run
from resolver.errors import BadInput, DetectionError
from resolver.probes import InstalledEnv, last_json_object, parse_env_json

__all__ = ["Mode", "TargetFacts", "PROBE_SCRIPT", "probe_output", "parse_facts", "read_target", "read_again"]

Mode = Literal["full", "light", "installed"]

PROBE_SCRIPT = Path(__file__).with_name("_child") / "probe_env.py"
# A cold ``import torch`` (CUDA libraries on a network filesystem) can take a minute; the other modes import nothing.
_TIMEOUT_S: dict[str, float] = {"full": 180.0, "light": 60.0, "installed": 120.0}


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """What one reading of a target interpreter found.

    Every mode fills the first five fields. ``full`` fills ``env``; ``light`` fills ``torch_version_py``,
    ``missing_build_tools`` and ``has_pip``; ``installed`` fills ``dists`` (normalized name -> (version, URL it was
    installed from or ``None``, editable)), ``dist_paths`` (name -> metadata folder), ``debris``, ``toplevel``
    (site-packages folder -> its entries) and ``torch_version_py``.
    """

    python_exe: str
    python: str  # "3.11"
    python_tag: str  # "cp311"
    platform: str  # wheel platform tag: "linux_x86_64"
    prefix: str  # sys.prefix
    env: InstalledEnv | None = None
    torch_version_py: str | None = None
    missing_build_tools: tuple[str, ...] = ()
    has_pip: bool | None = None
    dists: Mapping[str, tuple[str, str | None, bool]] = field(default_factory=dict)
    debris: tuple[str, ...] = ()
    dist_paths: Mapping[str, str] = field(default_factory=dict)
    toplevel: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sys_path: tuple[str, ...] = ()
    pth: tuple[str, ...] = ()  # what the site-packages' .pth files add to sys.path (probe_env.pth_paths)


def probe_output(python_exe: str, mode: Mode = "full") -> str:
    """Return the stdout of ``python_exe probe_env.py --mode MODE``.

    Raises ``BadInput`` when ``python_exe`` is missing or no working Python, ``DetectionError`` when it hangs.
    """
    if os.sep not in python_exe:  # a bare name such as python3.11: look it up on PATH
        python_exe = shutil.which(python_exe) or python_exe
    if not os.path.isfile(python_exe):
        raise BadInput(f"--python-exe {python_exe}: not found; pass the path of a python interpreter")
    timeout = _TIMEOUT_S[mode]
    try:
        done = run([python_exe, str(PROBE_SCRIPT), "--mode", mode], timeout=timeout, check=False)
    except OSError as exc:
        raise BadInput(f"--python-exe {python_exe}: cannot run it ({exc.strerror}); "
                       "pass the path of a python interpreter") from None
    except subprocess.TimeoutExpired:
        raise DetectionError(f"{python_exe} {PROBE_SCRIPT}: no answer in {timeout:.0f}s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"--python-exe {python_exe}: not a working Python 3.8+ interpreter ({last})")
    return done.stdout


def parse_facts(text: str, mode: Mode) -> TargetFacts:
    """Return the facts in the child's output for ``mode``; ``ValueError``/``KeyError`` when it holds none."""
    data = last_json_object(text)
    common = TargetFacts(python_exe=str(data["python_exe"]), python=str(data["python"]),
                         python_tag=str(data["python_tag"]), platform=str(data["platform"]), prefix=str(data["prefix"]))
    if mode == "full":
        return replace(common, env=parse_env_json(text))
    if mode == "light":
        version_py = data.get("torch_version_py")
        return replace(common, torch_version_py=str(version_py) if version_py is not None else None,
                       missing_build_tools=tuple(str(m) for m in data.get("missing_build_tools", ())),
                       has_pip=bool(data.get("has_pip")))
    return _installed(common, data)


def _installed(common: TargetFacts, data: Mapping[str, Any]) -> TargetFacts:
    dists = {str(k): (str(v[0]), v[1] if isinstance(v[1], str) else None, bool(v[2]))
             for k, v in data["dists"].items()}
    version_py = data.get("torch_version_py")
    return replace(common, dists=dists, sys_path=tuple(str(p) for p in data.get("sys_path", common.sys_path)),
                   pth=tuple(str(p) for p in data.get("pth", ())),
                   debris=tuple(str(d) for d in data.get("debris", ())),
                   dist_paths={str(k): str(v) for k, v in data.get("dist_paths", {}).items()},
                   toplevel={str(k): tuple(str(e) for e in v) for k, v in data.get("toplevel", {}).items()},
                   torch_version_py=str(version_py) if version_py is not None else None)


def read_target(python_exe: str, mode: Mode = "full") -> TargetFacts:
    """Return what ``python_exe`` is and has, read in a child process in ``mode``.

    Raises ``BadInput`` when ``python_exe`` is not a working Python, ``DetectionError`` when it does not answer or
    answers something unreadable.
    """
    text = probe_output(python_exe, mode)
    try:
        return parse_facts(text, mode)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DetectionError(f"{python_exe} {PROBE_SCRIPT.name} --mode {mode}: unreadable output ({exc}): "
                             f"{text[-200:]!r}") from None


def read_again(previous: TargetFacts) -> TargetFacts:
    """Return a new ``installed`` reading of the interpreter ``previous`` (an ``installed`` reading) was taken of.

    While the site-packages folders' ``.pth`` files add the same entries to sys.path (``probe_env.pth_paths``), the
    interpreter's sys.path is the one ``previous`` reported, so the same reader (``probe_env.probe_installed``) runs
    here, in this process, on that path: no child. Otherwise it reads in a child as usual.
    """
    from resolver._child import probe_env

    if not previous.sys_path:
        return read_target(previous.python_exe, "installed")
    listing = probe_env.site_listing(list(previous.toplevel))
    if tuple(probe_env.pth_paths(listing)) != previous.pth or set(listing) != set(previous.toplevel):
        return read_target(previous.python_exe, "installed")
    import importlib

    importlib.invalidate_caches()  # the path finders' and metadata's cached folder listings
    data = probe_env.probe_installed(search=list(previous.sys_path), site_dirs=list(previous.toplevel))
    return _installed(replace(previous, env=None), data)
