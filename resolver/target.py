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

from resolver._child import PROBE_ENV
from resolver._subprocess import run
from resolver.errors import BadInput, DetectionError
from resolver.probes import InstalledEnv, env_from_json, last_json_object

__all__ = ["Mode", "TargetFacts", "PROBE_SCRIPT", "probe_output", "parse_facts", "read_target", "read_again",
           "still_current", "parse_torch_version_py", "TIMEOUT_S"]

Mode = Literal["full", "light", "installed"]

PROBE_SCRIPT = Path(PROBE_ENV)
# How long a reading may take, per mode (read_ahead waits as long for its own). A cold ``import torch`` (CUDA
# libraries on a network filesystem) can take a minute; the other modes import nothing.
TIMEOUT_S: dict[str, float] = {"full": 180.0, "light": 60.0, "installed": 120.0}


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """What one reading of a target interpreter found.

    Every mode fills the first five fields. ``full`` fills ``env``; ``light`` fills ``torch_version_py``,
    ``missing_build_tools`` and ``has_pip``; ``installed`` fills ``has_pip``, ``dists`` (normalized name ->
    (version, URL it was installed from or ``None``, editable)), ``dist_paths`` (name -> metadata folder),
    ``debris``, ``toplevel`` (site-packages folder -> its entries), ``torch_version_py`` and ``markers`` (the
    interpreter's PEP 508 marker environment: a requirement's marker is judged by the target, not by gpustack's own
    interpreter).
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
    stamps: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # folder -> (mtime_ns, inode) when read
    read_at: int = 0  # when the reading began, ns since the epoch (probe_env.site_stamps)
    markers: Mapping[str, str] = field(default_factory=dict)


def probe_output(python_exe: str, mode: Mode = "full") -> str:
    """Return the stdout of ``python_exe probe_env.py --mode MODE``.

    Raises ``BadInput`` when ``python_exe`` is missing or no working Python, ``DetectionError`` when it hangs.
    """
    if os.sep not in python_exe:  # a bare name such as python3.11: look it up on PATH
        python_exe = shutil.which(python_exe) or python_exe
    if not os.path.isfile(python_exe):
        raise BadInput(f"--python-exe {python_exe}: not found; pass the path of a python interpreter")
    timeout = TIMEOUT_S[mode]
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
        return replace(common, env=env_from_json(data))
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
                   torch_version_py=str(version_py) if version_py is not None else None,
                   stamps={str(k): (int(v[0]), int(v[1])) for k, v in data.get("stamps", {}).items()},
                   read_at=int(data.get("read_at", 0)),
                   markers={str(k): str(v) for k, v in (data.get("markers") or common.markers).items()},
                   has_pip=bool(data["has_pip"]) if "has_pip" in data else common.has_pip)


# How close to a reading a folder's recorded modification may lie before the stamp proves nothing: a change in the
# same tick of the file system's clock can leave the time as it was (Linux stamps files from a clock that ticks every
# 1-10 ms; a file system that keeps whole seconds, such as ext3 or FAT, needs two).
_RACY_NS = 20_000_000
_RACY_WHOLE_SECONDS_NS = 2_000_000_000


def still_current(facts: TargetFacts) -> bool:
    """Return whether nothing was installed, removed or replaced in the site-packages folders of ``facts`` (an
    ``installed`` reading) since it began: each folder has the modification time and inode the reading recorded
    before it read anything, and that time lay far enough before the reading that a later change must have moved
    it (git's "racy" rule). ``False`` when it cannot tell."""
    if not facts.stamps or not set(facts.toplevel) <= set(facts.stamps):
        return False
    for folder, (mtime, inode) in facts.stamps.items():
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            if inode == -1:
                continue  # there was none, and there is none
            return False
        except OSError:
            return False
        racy = _RACY_WHOLE_SECONDS_NS if mtime % 1_000_000_000 == 0 else _RACY_NS
        if (st.st_mtime_ns, st.st_ino) != (mtime, inode) or mtime > facts.read_at - racy:
            return False
    return True


def parse_torch_version_py(text: str) -> tuple[str | None, str | None]:
    """Return ``(__version__, cuda)`` written in a torch ``version.py`` (``cuda`` ``None`` for a CPU build)."""
    import re

    version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return (version.group(1) if version else None, cuda.group(1) if cuda else None)


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
    site = probe_env.read_site(list(previous.toplevel))  # read once: decides here, then is the reading's own
    if tuple(site["pth"]) != previous.pth or set(site["toplevel"]) != set(previous.toplevel):
        return read_target(previous.python_exe, "installed")
    import importlib

    importlib.invalidate_caches()  # the path finders' cached folder listings (torch's version.py is found by one)
    data = probe_env.probe_installed(search=list(previous.sys_path), site_dirs=list(previous.toplevel), site=site)
    return _installed(replace(previous, env=None), data)
