"""What the distributions an install step added or changed need, and the environment does not hold.

pip and uv install a package with its dependencies unless they are told not to, and they can be told so by the user's
own configuration (``PIP_NO_DEPS=1``, pip.conf's ``no-deps = true``, uv.toml's ``[pip] no-deps = true``), which
reaches every installer gpustack starts. Such a run used to end "installed", exit 0, with a torch that cannot import
(``No module named 'typing_extensions'``). ``unmet`` reads the ``Requires-Dist`` of what a step changed, as
``pip check`` does, so the install stops and is undone instead.

A requirement is counted only where its marker can be decided: unconditional ones always; one with a marker by the
target's own marker environment (``marker_environment``: what the target interpreter reported, so an install into
a Python 3.12 venv from gpustack's 3.11 judges ``python_version`` by 3.12), evaluated with the extras the step asked
for. Anything undecidable is left out, so a false alarm cannot undo a good install.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from resolver.envstate import Snapshot

__all__ = ["unmet", "marker_environment", "only_for_extras", "NO_DEPS_HINT"]

NO_DEPS_HINT = ("the installer left dependencies out: a no-deps setting in its configuration does that (PIP_NO_DEPS, "
                "pip.conf's no-deps, uv.toml's [pip] no-deps): remove it and run the install again")


def unmet(snap: Snapshot, names: Iterable[str], extras: Iterable[str] = ()) -> list[str]:
    """Return one ``torch 2.13.0+cpu needs typing-extensions>=4.10.0 (not installed)`` line per requirement of the
    distributions ``names`` (normalized) that ``snap`` does not meet; ``extras`` are the ones the step asked for."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    from resolver._child.probe_env import dist_requires

    env = marker_environment(snap)
    wanted = [""] + [canonicalize_name(e) for e in extras]
    out: list[str] = []
    for name in sorted(set(names)):
        dist, info = snap.dists.get(name), snap.dist_paths.get(name)
        if dist is None or info is None:
            continue
        for line in dist_requires(info):
            if only_for_extras(line, wanted):
                continue
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue  # not ours to judge: pip and uv read it their way
            if req.marker is not None:
                if env is None or not any(req.marker.evaluate({**env, "extra": e}) for e in wanted):
                    continue
            need = canonicalize_name(req.name)
            have = snap.dists.get(need)
            if need == name:
                continue
            if have is None:
                out.append(f"{dist.name} {dist.version} needs {req} (not installed)")
            elif req.specifier and not req.specifier.contains(have.version, prereleases=True):
                out.append(f"{dist.name} {dist.version} needs {req} ({have.version} is installed)")
    return out


def marker_environment(snap: Snapshot) -> dict[str, str] | None:
    """Return the PEP 508 marker environment a requirement installed into ``snap``'s interpreter is judged by: the
    one that interpreter reported (``probe_env.pep508_environment``); for a snapshot without it (a journal's), this
    interpreter's when the target is of its kind (Python tag and platform); else ``None``: undecidable."""
    if snap.markers:
        return dict(snap.markers)
    from packaging.markers import default_environment

    from resolver._child.probe_env import platform_tag

    env = {k: str(v) for k, v in default_environment().items()}
    same_kind = snap.python_tag == "cp" + env["python_version"].replace(".", "") and snap.platform == platform_tag()
    return env if same_kind else None


# A requirement whose whole marker is ``extra == "NAME"`` (192 of the 213 lines torch 2.13.0 and its dependencies
# declare): the one form ``only_for_extras`` decides without packaging's parser.
_EXTRA_ONLY = re.compile(r";\s*extra\s*==\s*(['\"])([^'\"]*)\1\s*$")


def only_for_extras(line: str, wanted: Sequence[str]) -> bool:
    """Return whether the ``Requires-Dist`` ``line`` is needed only for an extra none of ``wanted`` (normalized
    names, ``""`` for none) is: its marker is exactly ``extra == "NAME"``, which is false for every other extra
    (PEP 685 compares them normalized). Parsing each such line with packaging took most of a step's check; any
    other form (and a direct URL, whose ``;`` could be the URL's) is left to packaging: ``False``."""
    found = _EXTRA_ONLY.search(line)
    if found is None or "@" in line:
        return False
    from packaging.utils import canonicalize_name

    return canonicalize_name(found.group(2)) not in wanted
