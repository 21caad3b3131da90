"""Installer backends and sources: pip or uv command lines, where each step's files come from, and whether the
hosts a plan needs answer. Pure argv building plus one reachability probe; ``resolver.install`` runs the commands.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version

from resolver.errors import BadInput, GpuStackError
from resolver.inputs import check_argument, check_index_url
from resolver.logs import Logger
from resolver.models import Plan, Step
from resolver.uvbin import find_uv, uv_not_found

__all__ = ["Backend", "Installer", "Sources", "Command", "SourceUnreachable", "choose_backend", "restore_args",
           "source_args", "answers", "origin", "silent_hosts", "check_reachable", "refuse_unreachable",
           "on_this_machine", "mirrors", "constraints_path", "pip_argv",
           "uv_source_args", "index_variant", "with_mirrors", "torch_mirror", "pypi_mirror",
           "PLANNED_ONLY", "installs_planned", "user_indexes", "user_index_note", "IGNORED_SETTINGS",
           "ignored_settings_note"]

log = Logger("gpustack.install")

Backend = Literal["pip", "uv"]

# The last path segment of a PyTorch-style index (download.pytorch.org/whl/cu121, a mirror of it): the local label
# its CUDA builds carry (torch-2.1.0+cu121).
_VARIANT = re.compile(r"^(cu\d{2,3}|cpu|rocm\d+(\.\d+)*|xpu)$")


def index_variant(url: str | None) -> str | None:
    """Return the build variant a PyTorch-style index URL serves (``.../whl/cu121`` -> ``cu121``), else ``None``."""
    if not url:
        return None
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return last if _VARIANT.match(last) else None


class SourceUnreachable(GpuStackError):
    """A step needs a host that does not answer; the message names the URL and the offline way around it."""

    exit_code = 1  # the network, not the input


def choose_backend(requested: str) -> Backend:
    """Return ``pip`` or ``uv``: ``auto`` takes uv when ``uvbin.find_uv`` finds one (the uv installed with gpustack,
    else uv on PATH)."""
    if requested in ("pip", "uv"):
        if requested == "uv" and find_uv() is None:
            raise BadInput(uv_not_found("--installer uv"))
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise BadInput(f"--installer {requested!r}: expected auto, pip or uv")
    return "uv" if find_uv() is not None else "pip"


@dataclass(frozen=True, slots=True)
class Command:
    """One child process of a run: its argv, the environment it adds (``None``: a variable removed), and the package
    it is for."""

    argv: list[str]
    env: dict[str, str | None]
    package: str
    kind: str = "install"
    note: str = ""
    files: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (path, lines) the run writes before it starts (constraints)

    def started(self) -> tuple[list[str], dict[str, str | None]]:
        """Return the argv and added environment the child is started with: index URLs with credentials in its
        environment, not in its argv (``redact.secrets_to_env``, as ``_subprocess`` starts every child)."""
        from resolver.redact import secrets_to_env

        argv, secrets = secrets_to_env(self.argv)
        return argv, {**self.env, **secrets}

    def to_dict(self) -> dict[str, Any]:
        argv, env = self.started()
        out: dict[str, Any] = {"argv": argv, "env": env, "package": self.package}
        if self.files:  # what to write before running argv (a dry run writes nothing itself)
            out["files"] = {path: "".join(f"{t}\n" for t in lines) for path, lines in self.files}
        return out

    def prepare(self) -> list[str]:
        """Return the shell lines that write ``files`` as the run would (a private folder, the same text), so a
        printed dry run is runnable with ``sh`` while the dry run itself writes nothing."""
        return [f"(umask 077 && mkdir -p {shlex.quote(os.path.dirname(path))} && printf '%s\\n' "
                f"{' '.join(shlex.quote(t) for t in lines)} > {shlex.quote(path)})" for path, lines in self.files]

    def shell(self) -> str:
        """Return the command as one shell line, environment first (credentials there, never in the argv)."""
        argv, env = self.started()
        said = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()) if v is not None)
        unset = [k for k, v in sorted(env.items()) if v is None]
        said = " ".join(["env", *(f"-u {k}" for k in unset), *([said] if said else [])]) if unset else said
        return (said + " " if said else "") + shlex.join(argv)


@dataclass(frozen=True, slots=True)
class Sources:
    """Local folders of wheels and sdists (``--find-links``), and whether the network is off (``--offline``)."""

    find_links: tuple[str, ...] = ()
    offline: bool = False
    unreachable: frozenset[str] = frozenset()
    allow_insecure: bool = False  # --allow-insecure-index: http:// indexes off loopback

    def index(self, url: str) -> str:
        """Return ``url`` when it may go on a command line as an index (``inputs.check_index_url``)."""
        return check_index_url(url, "index", allow_insecure=self.allow_insecure)

    def links(self) -> list[str]:
        """Return the ``--find-links`` arguments (each folder checked to be one argument)."""
        return [a for d in self.find_links for a in ("--find-links", check_argument(d, "--find-links"))]

    def local_file(self, step: Step) -> str | None:
        """Return the path of ``step``'s file in a find-links folder: its ``url``'s file name, or a wheel or sdist
        of the exact version the requirement pins; ``None`` when no folder has it."""
        want = _pinned(step)
        for folder in self.find_links:
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                if step.url and name == step.url.rsplit("/", 1)[-1].split("#")[0]:
                    return os.path.join(folder, name)
                if want is not None and _file_is(name, *want):
                    return os.path.join(folder, name)
        return None


def _pinned(step: Step) -> tuple[str, Version] | None:
    from resolver.models import exact_pin

    pinned = exact_pin(step.requirement)
    try:
        return (pinned[0], Version(pinned[1])) if pinned is not None else None
    except InvalidVersion:
        return None


def _file_is(filename: str, name: str, version: Version) -> bool:
    # packaging.utils imports packaging.tags, and with it logging and platform (~5 ms): only find-links need them
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    try:
        if filename.endswith(".whl"):
            found = parse_wheel_filename(filename)[:2]
        elif filename.endswith((".tar.gz", ".zip")):
            found = parse_sdist_filename(filename)
        else:
            return False
    except (InvalidWheelFilename, InvalidSdistFilename):
        return False
    return found == (name, version)


def source_args(step: Step, sources: Sources) -> list[str]:
    """Return where ``step`` may look: the plan's indexes (less those found unreachable) plus find-links; only
    the folders when offline."""
    links = sources.links()
    if sources.offline:
        return ["--no-index", *links]
    indexes = [sources.index(u) for u in (step.index_url, *step.extra_index_urls) if u and u not in sources.unreachable]
    if not indexes:
        return ["--no-index", *links] if step.index_url else links
    args = ["--index-url", indexes[0]]
    for url in indexes[1:]:
        args += ["--extra-index-url", url]
    return args + links


def mirror_of(url: str) -> str | None:
    """Return the mirror option that moves ``url`` elsewhere, as a phrase ("a mirror of PyPI: --index-url URL"):
    for the PyTorch index and PyPI, whose mirrors install, lock and download take (``mirrors``); else ``None``."""
    from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX

    if url.startswith(PYTORCH_INDEX + "/"):
        return ("a mirror of download.pytorch.org/whl (same layout: URL/cu121): --torch-index-url URL or "
                "$GPUSTACK_TORCH_INDEX_URL")
    if url.rstrip("/") == PYPI_SIMPLE:
        return "a mirror of PyPI: --index-url URL"
    return None


def answers(url: str, timeout: float = 3.0) -> bool:
    """Return whether ``url`` answers a HEAD request within ``timeout`` s (any status answers: a 404 too)."""
    import requests

    try:
        requests.head(url, timeout=timeout, allow_redirects=False)
        return True
    except requests.RequestException as exc:
        log.debug("probe %s: %s", url, exc)
        return False


def origin(url: str) -> str | None:
    """Return the host an http(s) ``url`` is fetched from, as ``scheme://host[:port]``; ``None`` for another
    scheme (``file:`` needs no network)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def silent_hosts(urls: Sequence[str], timeout: float = 3.0) -> list[str]:
    """Return the hosts (``origin``) of ``urls`` that do not answer (``answers``): the one probe rule of install,
    lock, ``install --lock`` and download. Each http(s) host is asked once, all at once (at most ``timeout`` s in
    all for up to 8 hosts), loopback too: a stopped devpi or ``http.server`` mirror is a real dead host, and asking
    a live one costs a millisecond. ``file:`` URLs need no network and are never asked. Callers pass only the URLs
    they will fetch from."""
    from concurrent.futures import ThreadPoolExecutor

    hosts = list(dict.fromkeys(o for o in map(origin, urls) if o is not None))
    if not hosts:
        return []  # local indexes and files only: nothing to probe (and requests not even imported)
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        answered = list(pool.map(lambda o: answers(o + "/", timeout), hosts))
    return [o for o, ok in zip(hosts, answered) if not ok]


def on_this_machine(url: str) -> bool:
    """Return whether ``url`` is served from this machine: a ``file:`` folder, or an http(s) host on loopback
    (``127.0.0.0/8``, ``localhost``, ``::1``). When it does not answer, the next step is here (start its server, fix
    the URL), not on a connected machine."""
    import ipaddress

    parts = urlsplit(url)
    if parts.scheme == "file":
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _missing_folder(url: str) -> str | None:
    """Return the folder of a ``file:`` ``url`` that does not exist (pip and uv skip it with a warning and then
    find nothing), else ``None``."""
    from resolver.inputs import file_url_path

    if urlsplit(url).scheme != "file":
        return None
    path = file_url_path(url)
    return None if os.path.exists(path) else path


def refuse_unreachable(urls: Sequence[str], needed: Mapping[str, str], *, verb: str, elsewhere: str, end: str = "",
                       timeout: float = 3.0) -> frozenset[str]:
    """Return the URLs of ``urls`` that cannot be used: their host does not answer (``silent_hosts``), or their
    ``file:`` folder does not exist. The one refusal of install (``check_reachable``) and download: raises
    ``SourceUnreachable`` (one line, exit 1) at once for the first such URL in ``needed`` (URL -> the requirement
    that needs it), naming the next step: for a host on this machine (``on_this_machine``), start it or fix the
    URL; else ``verb`` through the mirror option that moves it (``mirror_of``), or ``elsewhere`` (install: download
    on a connected machine; download: where it answers). ``end`` closes the line ("; nothing downloaded")."""
    from resolver.redact import redact

    silent = set(silent_hosts(urls, timeout))
    missing = {u: folder for u in urls if (folder := _missing_folder(u)) is not None}  # each folder looked at once
    dead = frozenset(u for u in urls if origin(u) in silent or u in missing)
    for url, requirement in needed.items():
        if url not in dead:
            continue
        said = f"{url} is not reachable (needed for {requirement}); "
        folder = missing.get(url)
        if folder is not None:
            said += f"no folder {folder} on this machine: fix the URL, or put the index there"
        elif on_this_machine(url):
            said += f"{origin(url)} is on this machine and does not answer: start its server, or fix the URL"
        else:
            mirror = mirror_of(url)
            said += (f"{verb} through {mirror}, or " if mirror else "") + elsewhere
        raise SourceUnreachable(redact(said + end))
    return dead


def check_reachable(steps: Sequence[Step], sources: Sources, timeout: float = 3.0) -> Sources:
    """Return ``sources`` with the URLs that cannot be used (``refuse_unreachable``) in ``unreachable``.

    Refuses (``SourceUnreachable``, one line naming the URL) at once when a step whose file is not in a find-links
    folder needs such a URL as its file or its first index; a step whose file is local just skips it (and its
    file's URL, not fetched then, is not probed).
    """
    if sources.offline:
        return sources
    local = {id(step) for step in steps if sources.local_file(step) is not None}
    used = [u for step in steps for u in ((None if id(step) in local else step.url), step.index_url,
                                          *step.extra_index_urls) if u]
    needed: dict[str, str] = {}  # URL -> the first step's requirement that needs it
    for step in steps:
        for url in (step.url, step.index_url) if id(step) not in local else ():
            if url:
                needed.setdefault(url, step.requirement)
    dead = refuse_unreachable(used, needed, verb="install", timeout=timeout,
                              elsewhere="on a connected machine run `gpustack download ... --dest DIR`, copy DIR "
                                        "here and install with `--find-links DIR`")
    return replace(sources, unreachable=sources.unreachable | dead) if dead else sources


def login_hint(step: Step, timeout: float = 3.0) -> str | None:
    """Return what to do when ``step`` failed and its file or an index of it answers 401/403 now (it wants a login
    the installer did not have: pip then ends in a traceback of its password prompt), else ``None``. Asked only
    after a failure, so a working install pays nothing for it."""
    urls = [u for u in (step.url, step.index_url, *step.extra_index_urls) if u and urlsplit(u).scheme in ("http", "https")]
    if not urls:
        return None
    import requests

    from resolver.index_lookup import login_advice

    for url in urls:
        try:  # GET, not HEAD (some servers answer HEAD 405/501), and its body never read (an index root can be large)
            with requests.get(url, timeout=timeout, allow_redirects=False, stream=True) as answer:
                status = answer.status_code
        except requests.RequestException:
            continue
        if status not in (401, 403):
            continue
        return f"hint: {login_advice(url, status)}"
    return None


def constraints_path(constraints: Sequence[str], write: bool = False) -> str | None:
    """Return the constraints file holding ``constraints`` (named by their hash; written when ``write``).

    Written only into a private (0700) folder through an ``O_EXCL`` temporary file, never through a planted link;
    when the cache folder cannot be made private, into a fresh private temporary folder."""
    if not constraints:
        return None
    import hashlib
    import tempfile

    from resolver.cache import cache_dir
    from resolver.safefiles import write_private

    text = "".join(f"{check_argument(c, 'constraint')}\n" for c in constraints)
    name = f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.txt"
    path = cache_dir() / "constraints" / name
    if write:
        written = write_private(path.parent, name, text.encode())
        if written is None:
            written = write_private(Path(tempfile.mkdtemp(prefix="gpustack-constraints-")), name, text.encode())
        if written is None:
            raise GpuStackError(f"cannot write the constraints file {name} in {path.parent} or a temporary folder")
        return str(written)
    return str(path)


class Installer:
    """pip or uv aimed at one interpreter; also the ``envstate.Restorer`` that undoes a failed run."""

    def __init__(self, backend: Backend, python_exe: str, restore_args: Sequence[str] = (),
                 pip: Sequence[str] | None = None) -> None:
        self.backend = backend
        self.python_exe = python_exe
        self.restore_args = list(restore_args)
        self._pip = list(pip) if pip is not None else None
        self._uv: str | None = None
        self.env = {"PYTHONUNBUFFERED": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def env_for(self, step: Step, plan: Plan) -> dict[str, str | None]:
        """Return the environment ``step``'s installer runs with: ``env``, plus, for a step that installs a planned
        package (``installs_planned``), what keeps the user's own extra indexes out of it (``PLANNED_ONLY``) and,
        for uv, the user's ``IGNORED_SETTINGS`` removed (``None``)."""
        if not installs_planned(step, plan):
            return dict(self.env)
        unset: dict[str, str | None] = {v: None for v in IGNORED_SETTINGS if self.backend == "uv" and v in os.environ}
        return {**self.env, **PLANNED_ONLY[self.backend], **unset}

    @property
    def pip(self) -> list[str]:
        """Return the pip acting on the target (probed once, when first needed: uv runs never need it)."""
        if self._pip is None:
            self._pip = pip_argv(self.python_exe)
        return self._pip

    def saw(self, has_pip: bool | None) -> None:
        """Take whether the target has pip from a reading of it (the install's snapshot), so that ``pip`` needs no
        reading of its own; a pip already chosen stays."""
        if self._pip is None and has_pip is not None:
            self._pip = pip_argv(self.python_exe, has_pip)

    @property
    def uv(self) -> str:
        """Return the uv this installer runs (``uvbin.find_uv``, asked once; ``uv`` when there is none, so that the
        command fails as the user would see it fail)."""
        if self._uv is None:
            self._uv = find_uv() or "uv"
        return self._uv

    def install_argv(self, requirements: Sequence[str], source: Sequence[str], *, no_deps: bool = False,
                     constraints: str | None = None, reinstall: bool = False, planned_only: bool = False) -> list[str]:
        """Return argv installing ``requirements`` (``-e X`` becomes two arguments) with ``source`` arguments.

        uv ignores ``UV_INDEX`` when the command line names ``--index`` (``uv_source_args`` always does): unless
        ``planned_only`` (a step of a planned package, ``installs_planned``), the user's ``UV_INDEX`` URLs go on the
        command line after the plan's, so they still serve what only they have, as pip's extra indexes do."""
        if self.backend == "uv":
            argv = [self.uv, "pip", "install", "--python", self.python_exe]
        else:
            argv = [*self.pip, "install", "--progress-bar", "off"]
        argv += ["--no-deps"] if no_deps else []
        argv += ["--constraint", constraints] if constraints else []
        argv += (["--reinstall"] if self.backend == "uv" else ["--force-reinstall"]) if reinstall else []
        if self.backend == "uv":
            argv += uv_source_args(source, () if planned_only else [u for v, u in user_indexes() if v == "UV_INDEX"])
        else:
            argv += list(source)
        for req in requirements:  # a requirement, URL or path: never an option, never two lines
            argv += ["-e", check_argument(req[3:], "requirement")] if req.startswith("-e ") else \
                [check_argument(req, "requirement")]
        return argv

    def reinstall_argv(self, requirements: Sequence[str]) -> list[str]:
        """Return argv putting back ``requirements`` exactly (``--no-deps``, forced) from the run's sources."""
        return self.install_argv(requirements, self.restore_args, no_deps=True, reinstall=True)

    def uninstall_argv(self, names: Sequence[str]) -> list[str]:
        """Return argv uninstalling ``names`` without a prompt."""
        if self.backend == "uv":
            return [self.uv, "pip", "uninstall", "--python", self.python_exe, *names]
        return [*self.pip, "uninstall", "-y", *names]


# What a step that installs a planned package runs with, so that only the plan's indexes serve it: a user's own extra
# index (``PIP_EXTRA_INDEX_URL``, pip.conf's ``extra-index-url``, ``UV_EXTRA_INDEX_URL``, ``UV_INDEX``) is searched
# beside them by pip and uv alike, and holding the same version (torch 2.1.0+cu121), or a higher one for a PyPI pin
# (2.1.0+cu118 matches torch==2.1.0), its file wins there (tests/e2e/test_user_extra_index.py). pip ignores an empty
# value but takes a blank one as "no extra index", over its config files; uv takes an empty value as none. uv's own
# config files' indexes rank below the command line's and stay. uv settings that would pick another file than the
# planned one are removed from the step's environment too (``IGNORED_SETTINGS``).
PLANNED_ONLY: dict[Backend, dict[str, str]] = {
    "pip": {"PIP_EXTRA_INDEX_URL": " "},
    "uv": {"UV_EXTRA_INDEX_URL": "", "UV_INDEX": ""},
}

# uv's settings, read from the environment, that change which file a planned step installs (``uv help pip install``):
# ``UV_TORCH_BACKEND`` makes uv ignore the command line's indexes for torch, torchvision ... and fetch them from
# download.pytorch.org/whl/<backend>; ``UV_INDEX_STRATEGY=unsafe-best-match`` lets a higher local build on an index of
# uv.toml outbid the planned one (gpustack sets the strategy itself where a step has several indexes). A planned
# step runs without them (uv refuses an empty value of either: they are removed, ``None`` in ``Installer.env_for``);
# plan and install say so once (``ignored_settings_note``).
IGNORED_SETTINGS = {"UV_TORCH_BACKEND": "the plan chose torch's build and its index",
                    "UV_INDEX_STRATEGY": "the plan chose each planned package's index"}

# The environment variables through which a user gives pip or uv extra indexes (``user_indexes``).
_USER_INDEX_VARIABLES = ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX")


def installs_planned(step: Step, plan: Plan) -> bool:
    """Return whether ``step`` installs a package the plan chose the index of: one of the stack's (torch, xformers,
    flash-attn ...) or a pass-through routed to torch's PyTorch-style index (torchvision). The other pass-through
    steps (numpy, diffusers ...: requirements gpustack does not solve) keep the user's extra indexes."""
    from packaging.utils import canonicalize_name

    name = canonicalize_name(step.package)
    return any(canonicalize_name(p.name) == name for p in plan.stack.packages) or \
        index_variant(step.index_url) is not None


def user_indexes(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Return the user's own extra indexes given in the environment, as ``(variable, URL)``, in order, once each
    (``UV_INDEX`` entries may be ``name=URL``)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for var in _USER_INDEX_VARIABLES:
        for word in env.get(var, "").split():
            url = word.split("=", 1)[1] if "=" in word.split("://", 1)[0] else word
            out.setdefault(url, var)
    return [(var, url) for url, var in out.items()]


def user_index_note(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the one line plan and install say when the user has extra indexes of their own (``user_indexes``),
    else ``None``."""
    found = user_indexes(environ)
    if not found:
        return None
    named = ", ".join(f"{url} (${var})" for var, url in found)
    return (f"your extra index {named} is in use for pass-through requirements and their dependencies; the planned "
            f"packages (torch and what is built for it) install from their planned indexes only")


def ignored_settings_note(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the one line plan and install say when the user set one of ``IGNORED_SETTINGS``, else ``None``."""
    env = os.environ if environ is None else environ
    found = [f"{var}={env[var]} ({why})" for var, why in IGNORED_SETTINGS.items() if env.get(var, "").strip()]
    if not found:
        return None
    return f"ignored for the planned packages' steps: {'; '.join(found)}"


def uv_source_args(source: Sequence[str], also: Sequence[str] = ()) -> list[str]:
    """Return pip-style source arguments (``--index-url A --extra-index-url B``, A the step's planned index) as uv
    must get them to search A first and still look at B.

    uv ranks ``--extra-index-url`` above ``--index-url`` and, by default, takes a package only from the first index
    that has its name (INDEXES.md): PyPI's ``torch`` would hide ``torch==2.1.0+cu121``. So the indexes go in the
    plan's order as ``--index`` (highest first), the last also as ``--default-index`` (which keeps pypi.org out): a
    command line's ``--index`` ranks above every index of the user's (``UV_EXTRA_INDEX_URL``, uv.toml's
    ``extra-index-url`` and ``[[index]]`` all rank above ``--default-index``: with one index, first-index took the
    user's torch over the planned one; tests/e2e/test_user_extra_index.py),
    and with more than one, ``--index-strategy unsafe-best-match``: every index is searched and the best version wins
    as with pip, so a pinned local build wins, torch's own dependencies resolve where a recent enough version is
    (the PyTorch index mirrors old ones), and between equal versions the first (the planned) index wins.
    """
    indexes: list[str] = []
    rest: list[str] = []
    args = list(source)
    i = 0
    while i < len(args):
        if args[i] in ("--index-url", "--extra-index-url") and i + 1 < len(args):
            indexes.append(args[i + 1])
            i += 2
            continue
        rest.append(args[i])
        i += 1
    planned = len(indexes)
    indexes += [u for u in dict.fromkeys(also) if u not in indexes] if indexes else []  # the user's, after the plan's
    out: list[str] = []
    for url in indexes:
        out += ["--index", url]
    if indexes:
        out += ["--default-index", indexes[planned - 1]]
    if len(indexes) > 1:
        out += ["--index-strategy", "unsafe-best-match"]
    return out + rest


def pip_argv(python_exe: str, has_pip: bool | None = None) -> list[str]:
    """Return the pip that acts on ``python_exe``: its own, or this one's with ``--python`` (uv venvs lack pip).

    Whether it has pip (``has_pip``, when a reading of it already says) is read by ``resolver.target`` (mode
    ``light``; an ``installed`` reading says it too), the one reader of a target interpreter.
    """
    if has_pip is None:
        from resolver.target import read_target

        has_pip = read_target(python_exe, "light").has_pip
    if has_pip:
        return [python_exe, "-m", "pip"]
    return [sys.executable, "-m", "pip", "--python", python_exe]


def restore_args(plan: Plan, sources: Sources) -> list[str]:
    """Return the source arguments a restore uses: every index of the plan (first as the index) and find-links."""
    links = sources.links()
    if sources.offline:
        return ["--no-index", *links]
    indexes: list[str] = []
    for step in plan.steps:
        for url in (step.index_url, *step.extra_index_urls):
            if url and url not in indexes and url not in sources.unreachable:
                indexes.append(sources.index(url))
    args = ["--index-url", indexes[0]] if indexes else []
    for url in indexes[1:]:
        args += ["--extra-index-url", url]
    return args + links




def _move(url: str | None, old: str, new: str) -> str | None:
    if url is None:
        return None
    if url.rstrip("/") == old.rstrip("/"):
        return new.rstrip("/")
    if url.startswith(old.rstrip("/") + "/"):
        return new.rstrip("/") + url[len(old.rstrip("/")):]
    return url


def _mirror_url(url: str, what: str, allow_insecure: bool) -> str:
    """Return ``url`` (no trailing slash) when it can be an index (``inputs.check_index_url``); ``BadInput``
    otherwise."""
    return check_index_url(url, what, allow_insecure=allow_insecure).rstrip("/")


def pypi_mirror(index_url: str | None) -> str | None:
    """Return the user's PyPI mirror (``None`` for pypi.org): ``index_url`` is the one ``pipeline.pypi_index`` read
    into ``PlanOptions`` (``--index-url``, else ``PIP_INDEX_URL``, ``UV_DEFAULT_INDEX`` or ``UV_INDEX_URL``), which
    ``PlanOptions.from_cli`` checked already (``inputs.check_index_url``, with ``--allow-insecure-index``)."""
    return index_url.rstrip("/") if index_url else None


def torch_mirror(given: str | None, environ: Mapping[str, str] | None = None, *, allow_insecure: bool = False) -> str | None:
    """Return the mirror of download.pytorch.org/whl: ``--torch-index-url``, else ``GPUSTACK_TORCH_INDEX_URL``."""
    env = os.environ if environ is None else environ
    if given:
        return _mirror_url(given, "--torch-index-url", allow_insecure)
    if env.get("GPUSTACK_TORCH_INDEX_URL"):
        return _mirror_url(env["GPUSTACK_TORCH_INDEX_URL"], "GPUSTACK_TORCH_INDEX_URL", allow_insecure)
    return None


def mirrors(torch_index_url: str | None, index_url: str | None, *,
            allow_insecure: bool = False) -> tuple[str | None, str | None]:
    """Return ``(torch_mirror, pypi_mirror)`` of the command line's ``--torch-index-url`` (or its environment
    variable) and the PyPI mirror in effect (``PlanOptions.index_url``, checked there): what install, lock, download
    and dockerfile hand to ``with_mirrors``."""
    return torch_mirror(torch_index_url, allow_insecure=allow_insecure), pypi_mirror(index_url)


def with_mirrors(plan: Plan, torch_index: str | None, pypi_index: str | None, *, packages: bool = True) -> Plan:
    """Return ``plan`` with download.pytorch.org/whl/... moved to ``torch_index``/... (an Artifactory, devpi or
    air-gapped copy laid out the same: ``<mirror>/cu121``) and pypi.org/simple to ``pypi_index``; the stack's
    packages too unless ``packages`` is false (``plan.make_plan`` moves only the steps: the stack keeps what the
    solver chose, PyPI's torch pinned without its local label)."""
    from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX

    def move(url: str | None) -> str | None:
        if torch_index:
            url = _move(url, PYTORCH_INDEX, torch_index)
        if pypi_index:
            url = _move(url, PYPI_SIMPLE, pypi_index)
        return url

    if not torch_index and not pypi_index:
        return plan
    def said(step: Step) -> str:  # the step's text names its index: name the mirror there too
        new = move(step.index_url)
        return step.description.replace(step.index_url, new) if step.index_url and new else step.description

    steps = tuple(replace(s, index_url=move(s.index_url), description=said(s),
                          extra_index_urls=tuple(u for u in (move(x) for x in s.extra_index_urls) if u))
                  for s in plan.steps)
    if not packages:
        return replace(plan, steps=steps)
    chosen = tuple(replace(p, index_url=move(p.index_url)) for p in plan.stack.packages)
    return replace(plan, stack=replace(plan.stack, packages=chosen), steps=steps)
