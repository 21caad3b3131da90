"""What ``packaging.pylock`` does not check in a gpustack lock: the ``[tool.gpustack]`` tables and what may reach
pip from a lock (file URLs and indexes on one line, build variables from the allowlist).

``check(data, what)`` runs after ``Pylock.from_dict`` accepted the PEP 751 part; it raises ``BadInput`` naming the
field in the same style (``packages[3].tool.gpustack.arch_list: '9.x' is not an arch list such as '8.0;9.0+PTX'``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from resolver import schema as sc
from resolver.errors import BadInput
from resolver.matrix_types import is_commit
from resolver.models import PLATFORMS, ArchList, ComputeCapability, parse_driver, parse_glibc

__all__ = ["check"]

_HINT = "re-run `gpustack lock`"


def _arch(value: str | None, loc: sc.Loc) -> None:
    if value is None:
        return
    try:
        ArchList.parse(value)
    except BadInput:
        loc.fail(value, "an arch list such as '8.0;9.0+PTX'")


def _package_tool(tool: Any, loc: sc.Loc) -> None:
    t = sc.table(tool, loc)
    sc.get_int(t, "order", loc, 0)
    method = sc.get_opt_str(t, "method", loc)
    if method not in (None, "wheel", "source"):
        loc.at("method").fail(method, "'wheel' or 'source'")
    sc.get_bool(t, "dependency", loc, False)
    sc.check_build_env(t.get("build_env", {}), loc.at("build_env"))
    _arch(sc.get_opt_str(t, "arch_list", loc, limit=400), loc.at("arch_list"))


def _compute_capability(t: Mapping[str, Any], loc: sc.Loc, limit: int) -> None:
    """Check ``t``'s ``compute_capability`` (required): a compute capability ``models.ComputeCapability`` reads."""
    cc = sc.get_str(t, "compute_capability", loc, limit=limit)
    try:
        ComputeCapability.parse(cc)
    except BadInput:
        loc.at("compute_capability").fail(cc, "a compute capability such as 8.6")


def _driver(t: Mapping[str, Any], key: str, loc: sc.Loc) -> None:
    """Check ``t[key]`` where present: a driver version ``models.parse_driver`` reads."""
    driver = sc.get_opt_str(t, key, loc, limit=20)
    if driver is not None:
        try:
            parse_driver(driver)
        except BadInput:
            loc.at(key).fail(driver, "a driver version such as 535.104.05")


def _files(p: Mapping[str, Any], loc: sc.Loc) -> None:
    index = sc.get_opt_str(p, "index", loc)
    if index is not None:
        sc.check_url(index, loc.at("index"))
    for i, w in enumerate(sc.get_list(p, "wheels", loc)):
        wl = loc.at("wheels").at(i)
        url = sc.get_opt_str(sc.table(w, wl), "url", wl, limit=4000)
        if url is not None:
            sc.check_url(url, wl.at("url"))
    if p.get("sdist") is not None:
        sl = loc.at("sdist")
        url = sc.get_opt_str(sc.table(p["sdist"], sl), "url", sl, limit=4000)
        if url is not None:
            sc.check_url(url, sl.at("url"))
    if p.get("vcs") is not None:
        vl = loc.at("vcs")
        vcs = sc.table(p["vcs"], vl)
        url = sc.get_opt_str(vcs, "url", vl, limit=4000)
        if url is not None:
            sc.check_url(url, vl.at("url"), schemes=("https", "http", "file", "ssh", "git"))
        # PEP 751: a VCS with hash revision ids MUST lock one; uv reads nothing else ("Object ID must be exactly 40
        # hex characters"; it takes either case, as git does). gpustack writes the full hash (Matrix.git_commit); a
        # tag here (older gpustack locks wrote one) is refused, not read: re-locking records the commit it names.
        commit = sc.get_opt_str(vcs, "commit-id", vl, limit=100)
        if commit is not None and not is_commit(commit.lower()):
            vl.at("commit-id").fail(commit, "a full git commit hash (40 hex digits: PEP 751 and uv read no tag or "
                                            "short hash there)")


def _target(t: Any, loc: sc.Loc) -> None:
    t = sc.table(t, loc)
    python = sc.get_str(t, "python", loc, limit=10)
    if not re.fullmatch(r"3\.[0-9]{1,2}", python, re.ASCII):
        loc.at("python").fail(python, "a Python version such as 3.11")
    platform = sc.get_str(t, "platform", loc, limit=30)
    if platform not in PLATFORMS:
        loc.at("platform").fail(platform, f"one of {', '.join(PLATFORMS)}")
    for i, g in enumerate(sc.get_list(t, "gpus", loc, limit=64)):
        gl = loc.at("gpus").at(i)
        g = sc.table(g, gl)
        sc.get_str(g, "name", gl, limit=200)
        _compute_capability(g, gl, limit=20)
    for key in ("min_driver", "driver"):
        _driver(t, key, loc)
    sc.get_opt_str(t, "cuda", loc, limit=20)
    _arch(sc.get_opt_str(t, "arch_list", loc, limit=400), loc.at("arch_list"))


def check(data: Mapping[str, Any], what: str = "lock file") -> None:
    """Raise ``BadInput`` at the first field of ``data`` (a parsed lock ``Pylock.from_dict`` accepted) that gpustack
    cannot use safely: a malformed ``[tool.gpustack]`` table, a URL that is not one line, a build variable outside
    ``schema.BUILD_VARIABLES``."""
    root = sc.Loc(what, hint=_HINT)
    for i, p in enumerate(sc.get_list(data, "packages", root)):
        pl = root.at("packages").at(i)
        p = sc.table(p, pl)
        _files(p, pl)
        tool = sc.table(p.get("tool", {}), pl.at("tool"))
        if "gpustack" in tool:
            _package_tool(tool["gpustack"], pl.at("tool").at("gpustack"))
    tl = root.at("tool").at("gpustack")
    tool = sc.table(sc.table(data.get("tool", {}), root.at("tool")).get("gpustack", {}), tl)
    if "target" in tool:
        _target(tool["target"], tl.at("target"))
    for i, m in enumerate(sc.get_list(tool, "missing", tl)):
        ml = tl.at("missing").at(i)
        m = sc.table(m, ml)
        sc.check_requirement(f"{sc.get_str(m, 'name', ml, limit=200)}=={sc.get_str(m, 'version', ml, limit=200)}",
                             ml.at("version"))
        url = sc.get_opt_str(m, "url", ml, limit=4000)
        if url:
            sc.check_url(url, ml.at("url"))
        index = sc.get_opt_str(m, "index", ml)
        if index:
            sc.check_url(index, ml.at("index"))
        kind = sc.get_opt_str(m, "kind", ml)
        if kind not in (None, "wheel", "sdist", "vcs"):
            ml.at("kind").fail(kind, "'wheel', 'sdist' or 'vcs'")
        _package_tool({k: v for k, v in m.items() if k in ("order", "method", "dependency", "build_env", "arch_list")},
                      ml)
    sc.get_str_list(tool, "notes", tl, limit=4000)
    for i, r in enumerate(sc.get_str_list(tool, "request", tl)):
        sc.check_requirement(r, tl.at("request").at(i))
    sc.get_opt_str(tool, "profile", tl, limit=200)
    glibc = sc.get_opt_str(tool, "glibc", tl, limit=200)
    if glibc is not None:  # read back by every reader of the lock (re-lock, check-upgrade): named here, once
        try:
            parse_glibc(glibc)
        except BadInput:
            tl.at("glibc").fail(glibc, "a glibc version such as 2.28")
    nvcc = sc.get_opt_str(tool, "nvcc", tl, limit=20)
    if nvcc is not None and not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", nvcc, re.ASCII):
        tl.at("nvcc").fail(nvcc, "a CUDA version such as 12.4")
    for key in ("verified_only", "prefer_wheels", "upgrade", "deps"):
        sc.get_bool(tool, key, tl, False)
    _driver(tool, "driver", tl)
    if "fleet" in tool:
        _fleet(tool["fleet"], tl.at("fleet"))


def _fleet(fleet: Any, loc: sc.Loc) -> None:
    """Check a fleet lock's ``[tool.gpustack.fleet]`` (``fleet.Fleet.record``): what a re-lock plans each class for."""
    t = sc.table(fleet, loc)
    for key in ("origin", "kind"):
        sc.get_str(t, key, loc, limit=4000)
    for key in ("driver", "glibc"):
        value = sc.get_opt_str(t, key, loc, limit=20)
        if value is not None and not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4}){1,2}", value, re.ASCII):
            loc.at(key).fail(value, "a version such as 535.104.05 or 2.28")
    classes = sc.get_list(t, "classes", loc)
    if not classes:
        loc.at("classes").fail(classes, "at least one class")
    for i, c in enumerate(classes):
        cl = loc.at("classes").at(i)
        ct = sc.table(c, cl)
        sc.get_str(ct, "name", cl, limit=200)
        _compute_capability(ct, cl, limit=10)
        _driver(ct, "driver", cl)
        platform = sc.get_str(ct, "platform", cl, limit=40)
        if platform not in PLATFORMS:
            cl.at("platform").fail(platform, "one of " + ", ".join(PLATFORMS))
        sc.get_opt_str(ct, "os", cl, limit=200)
        sc.get_str(ct, "mig", cl, limit=200)
        for key in ("gpus", "memory_mib"):
            n = ct.get(key, 1)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                cl.at(key).fail(n, "a whole number")
        gpus = ct.get("gpus")
        if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
            cl.at("gpus").fail(gpus, "a whole number of GPUs")
        if not sc.get_str_list(ct, "nodes", cl, limit=400):
            cl.at("nodes").fail([], "at least one node")
