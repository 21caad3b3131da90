"""The GPU fleet of a cluster: Kubernetes nodes (NVIDIA GPU Feature Discovery labels) or Slurm nodes (gres), grouped
into classes that one stack must serve (docs/fleet.md).

``parse(text, origin, matrix)`` is pure: it detects the format from the content and returns a ``Fleet``.
``read_fleet(source, matrix)`` is the one reader: a file (regular files only, size-limited, so a FIFO cannot hang),
or ``k8s`` / ``slurm`` to run ``kubectl get nodes -o json`` / ``scontrol show node --json`` through
``resolver._subprocess``. Every bad or partial input raises ``BadInput`` with one line naming the node and the fix.

Formats (docs/fleet.md cites each):
* Kubernetes: a ``v1`` ``List`` (or ``NodeList``) of ``Node`` objects; GPU facts are GFD labels under
  ``metadata.labels`` (``nvidia.com/gpu.product``, ``gpu.count``, ``gpu.compute.major``/``minor``,
  ``cuda.driver.major``/``minor``/``rev``, ``mig.strategy``, ...), CPU and OS in ``status.nodeInfo``.
* Slurm: ``{"meta": ..., "nodes": [...]}`` of the data_parser plugin; GPUs in ``gres`` (``gpu:a100:8(S:0-1)``),
  ``features`` a list of strings (v0.0.39+) or a comma-separated string (v0.0.37/38), ``architecture``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from resolver.errors import BadInput, CommandFailed, DetectionError
from resolver.matrix_types import Matrix
from resolver.models import GO_ARCH, ComputeCapability, Gpu, format_driver

__all__ = ["Node", "GpuClass", "Fleet", "parse", "read_fleet", "MAX_BYTES", "GFD"]

MAX_BYTES = 256 * 1024 * 1024  # a 5,000-node `kubectl get nodes -o json` is ~50 MB
GFD = "nvidia.com/"
_PRODUCT, _COUNT, _FAMILY, _MEMORY = (GFD + k for k in ("gpu.product", "gpu.count", "gpu.family", "gpu.memory"))
_CC_MAJOR, _CC_MINOR = GFD + "gpu.compute.major", GFD + "gpu.compute.minor"
_DRV = tuple(GFD + f"cuda.driver.{k}" for k in ("major", "minor", "rev"))
_RUNTIME = tuple(GFD + f"cuda.runtime.{k}" for k in ("major", "minor"))
_MIG_STRATEGY, _MIG_CAPABLE = GFD + "mig.strategy", GFD + "mig.capable"
_MIXED_COUNT = re.compile(r"^nvidia\.com/mig-(\d+g\.\d+gb(?:\+me)?)\.count$")
_MIG_PROFILE = re.compile(r"(\d+g\.\d+gb(?:\+me)?)", re.IGNORECASE)
_K8S_ARCH = {go: p.removeprefix("linux_") for p, go in GO_ARCH.items() if p.startswith("linux_")}  # arm64: aarch64
_PLATFORM = {("linux", "x86_64"): "linux_x86_64", ("linux", "aarch64"): "linux_aarch64",
             ("windows", "x86_64"): "win_amd64"}


@dataclass(frozen=True, slots=True)
class Node:
    """One GPU node as the cluster describes it."""

    name: str
    product: str  # as labelled (``NVIDIA-H100-80GB-HBM3``) or the gres type (``a100``)
    gpu: Gpu  # display name and compute capability
    count: int
    platform: str
    driver: Version | None = None  # None: the source does not say (Slurm)
    os: str | None = None  # ``status.nodeInfo.osImage``
    mig: str = "off"  # "off", "single 1g.5gb", "mixed 1g.5gb,3g.20gb"
    cuda_runtime: str | None = None  # the CUDA version the node's driver supports (GFD)


# os-release PRETTY_NAME (what Kubernetes shows as osImage) -> its ID and major VERSION_ID (Ubuntu: major.minor), the
# key of the matrices' OS -> glibc facts (Matrix.os_release: platforms.toml [[os]]): "CentOS Linux 7 (Core)" ->
# centos-7, "Ubuntu 22.04.4 LTS" -> ubuntu-22.04, "Amazon Linux 2023.6.20241121" -> amzn-2023.
_OS_IDS = ((re.compile(r"ubuntu (\d+\.\d+)"), "ubuntu"), (re.compile(r"centos (?:linux |stream )?(\d+)"), "centos"),
           (re.compile(r"red hat enterprise linux (?:server |workstation )?(\d+)"), "rhel"),
           (re.compile(r"rocky linux (\d+)"), "rocky"), (re.compile(r"almalinux (\d+)"), "almalinux"),
           (re.compile(r"oracle linux server (\d+)"), "ol"), (re.compile(r"amazon linux (\d+)"), "amzn"),
           (re.compile(r"debian gnu/linux (\d+)"), "debian"))


def os_release_id(os_image: str) -> str | None:
    """Return the ``ID-VERSION`` key (``centos-7``) of an os-release PRETTY_NAME, or ``None`` for one not known."""
    text = os_image.strip().lower()
    for pattern, os_id in _OS_IDS:
        m = pattern.match(text)
        if m:
            return f"{os_id}-{m.group(1)}"
    return None


@dataclass(frozen=True, slots=True)
class GpuClass:
    """Nodes that one plan serves alike: same capability, driver, platform, OS image and MIG mode.

    ``glibc``/``glibc_assumed``: the C library the class is planned for (``fleet_plan.with_glibc``: as for one
    machine, ``pipeline.glibc_for``), ``None`` until planned."""

    gpu: Gpu
    driver: Version | None
    platform: str
    os: str | None
    mig: str
    nodes: tuple[Node, ...]
    glibc: Version | None = None
    glibc_assumed: bool = False

    @property
    def label(self) -> str:
        """A short name for messages, e.g. ``Tesla V100-SXM2-16GB``."""
        return self.gpu.name

    @property
    def gpus(self) -> int:
        return sum(n.count for n in self.nodes)

    @property
    def products(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.product for n in self.nodes))

    def describe(self, driver: Version | None = None) -> str:
        """One line: ``Tesla V100-SXM2-16GB x16 on 2 nodes (compute capability 7.0, driver 535.104.05, ...)``;
        ``driver``: the ``--driver`` that stands in where the nodes report none."""
        if self.driver:
            drv = f"driver {format_driver(self.driver)}"
        else:
            drv = f"driver {format_driver(driver)} (--driver)" if driver is not None else "driver unknown"
        facts = [f"compute capability {self.gpu.compute_capability}", drv, self.platform]
        if self.os:
            facts.append(self.os)
        if self.mig != "off":
            facts.append(f"MIG {self.mig}")
        n = len(self.nodes)
        if self.mig != "off":
            what = "MIG devices" if self.mig.startswith("single") else "GPUs and MIG devices"
            return f"{self.label}, {self.gpus} {what} on {n} node{'s' if n != 1 else ''} ({', '.join(facts)})"
        return f"{self.label} x{self.gpus} on {n} node{'s' if n != 1 else ''} ({', '.join(facts)})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.label, "compute_capability": str(self.gpu.compute_capability),
                "driver": format_driver(self.driver) if self.driver else None, "platform": self.platform,
                "os": self.os, "mig": self.mig, "products": list(self.products), "gpus": self.gpus,
                "nodes": [n.name for n in self.nodes]}

    @property
    def slug(self) -> str:
        """A file-name-safe id: ``tesla-v100-sxm2-16gb-d535``."""
        base = re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")
        base = re.sub(r"^(nvidia|tesla)-", "", base) or "gpu"
        if self.driver is not None:
            base += f"-d{self.driver.major}"
        if self.mig != "off":
            base += "-mig"
        return base


@dataclass(frozen=True, slots=True)
class Fleet:
    """The GPU classes of a cluster, what was read to find them, and the nodes left out (with why)."""

    origin: str  # the file or command read
    kind: str  # "kubernetes" or "slurm"
    classes: tuple[GpuClass, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (node, why)
    labels: tuple[str, ...] = ()  # the label or field names read
    notes: tuple[str, ...] = field(default=())
    driver_unknown: bool = False  # some node reports no NVIDIA driver version

    def all_notes(self, driver: Version | None = None) -> list[str]:
        """Return the notes, with the one about nodes that report no driver: which ``--driver`` stands in for them
        (``driver``), or that one should be passed."""
        out = list(self.notes)
        if self.driver_unknown:
            out.append(f"driver {format_driver(driver)} (--driver) for the classes whose nodes report none"
                       if driver is not None else
                       "the source gives no NVIDIA driver version: pass --driver (the oldest driver of the fleet)")
        return out

    def to_dict(self, driver: Version | None = None) -> dict[str, Any]:
        """Return the fleet for ``--json`` output (docs/fleet.md); ``driver`` as in ``summary``."""
        classes = [dict(c.to_dict(), id=i) for c, i in zip(self.classes, self.class_ids())]
        return {"origin": self.origin, "kind": self.kind, "classes": classes,
                "skipped": [{"node": n, "why": w} for n, w in self.skipped], "read": list(self.labels),
                "notes": self.all_notes(driver)}

    def record(self) -> dict[str, Any]:
        """Return what a lock records of the fleet it was made for (``[tool.gpustack.fleet]``), so that a bare re-lock
        plans each class again for its own GPU, driver, platform and OS (``from_record``)."""
        classes = [{k: v for k, v in c.to_dict().items() if k != "products" and v is not None}
                   | ({"memory_mib": c.gpu.memory_mib} if c.gpu.memory_mib else {}) for c in self.classes]
        return {"origin": self.origin, "kind": self.kind, "classes": classes}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str) -> Fleet:
        """Return the fleet a lock recorded (``record``; checked by ``lock_schema``), read from the lock ``where``."""
        classes = []
        for c in record["classes"]:
            gpu = Gpu(str(c["name"]), ComputeCapability.parse(str(c["compute_capability"])), c.get("memory_mib"))
            driver = Version(str(c["driver"])) if c.get("driver") else None
            names = [str(n) for n in c["nodes"]]
            count = int(c["gpus"])
            each = [count // len(names) + (1 if i < count % len(names) else 0) for i in range(len(names))]
            nodes = tuple(Node(n, gpu.name, gpu, k, str(c["platform"]), driver, c.get("os"), str(c["mig"]))
                          for n, k in zip(names, each))
            classes.append(GpuClass(gpu, driver, str(c["platform"]), c.get("os"), str(c["mig"]), nodes))
        return cls(str(record["origin"]), str(record["kind"]), tuple(classes), labels=(f"{where}'s [tool.gpustack.fleet]",),
                   driver_unknown=any(c.driver is None for c in classes))

    def class_ids(self) -> list[str]:
        """Return a distinct file-name-safe id per class (its slug, numbered when two classes share one)."""
        ids: list[str] = []
        for c in self.classes:
            slug, n = c.slug, 2
            while slug in ids:
                slug, n = f"{c.slug}-{n}", n + 1
            ids.append(slug)
        return ids

    def summary(self, driver: Version | None = None) -> list[str]:
        """Lines saying what was read, the classes, each skipped node with its reason, and the notes (``driver``:
        the ``--driver`` that stands in for nodes that report none)."""
        nodes = len({n.name for c in self.classes for n in c.nodes})  # a node with two GPU types is in two classes
        out = [f"fleet: {self.kind} nodes from {self.origin}: {nodes} GPU node{'s' if nodes != 1 else ''} in "
               f"{len(self.classes)} class{'es' if len(self.classes) != 1 else ''}"]
        out.append("  read: " + ", ".join(self.labels))
        for c, cid in zip(self.classes, self.class_ids()):
            out.append(f"  class {cid}: {c.describe(driver)}")
        for name, why in self.skipped:
            out.append(f"  skipped {name}: {why}")
        out += [f"  note: {n}" for n in self.all_notes(driver)]
        return out


# --- reading -------------------------------------------------------------------------------------------------------

_HINT = "pass a file holding `kubectl get nodes -o json` or `scontrol show node --json` output, or k8s / slurm"


def _read_file(path: str) -> str:
    """Return the text of a regular file of at most ``MAX_BYTES``; ``BadInput`` otherwise (a FIFO never blocks)."""
    from resolver.inputs import read_text

    return read_text(path, f"--fleet {path}", limit=MAX_BYTES, hint=_HINT)


_COMMANDS = {"k8s": ("kubectl", ["kubectl", "get", "nodes", "-o", "json"]),
             "slurm": ("scontrol", ["scontrol", "show", "node", "--json"])}


def _run_source(source: str) -> str:
    """Return the output of kubectl or scontrol for ``source`` (``k8s`` / ``slurm``)."""
    from resolver import _subprocess

    program, argv = _COMMANDS[source]
    exe = shutil.which(program)
    if exe is None:
        raise BadInput(f"--fleet {source}: {program} is not on PATH; install it, or run `{' '.join(argv)}` where it "
                       "works and pass the saved output as --fleet FILE")
    # The cluster not answering is not the input's fault (README: exit 1, as an index that does not answer)
    try:
        done = _subprocess.run([exe, *argv[1:]], timeout=120)
    except CommandFailed as exc:
        last = (exc.output_tail.strip().splitlines() or [f"exit code {exc.returncode}"])[-1]
        raise DetectionError(f"--fleet {source}: `{' '.join(argv)}` failed: {last[:300]}; check the cluster "
                             "connection, or pass its saved output as --fleet FILE") from None
    except OSError as exc:
        raise BadInput(f"--fleet {source}: cannot run {program} ({exc.strerror})") from None
    except Exception as exc:  # subprocess.TimeoutExpired: no cluster answer
        raise DetectionError(f"--fleet {source}: `{' '.join(argv)}` gave no answer ({type(exc).__name__}); "
                             "check the cluster connection or pass a saved output file") from None
    if len(done.stdout) > MAX_BYTES:
        raise BadInput(f"--fleet {source}: output over the {MAX_BYTES // 2**20} MiB limit")
    return done.stdout


def read_fleet(source: str, matrix: Matrix) -> Fleet:
    """Return the fleet of ``source``: ``k8s``, ``slurm`` (run the client) or a file of its saved JSON output."""
    if source in _COMMANDS:
        return parse(_run_source(source), f"`{' '.join(_COMMANDS[source][1])}`", matrix)
    return parse(_read_file(source), source, matrix)


# --- parsing -------------------------------------------------------------------------------------------------------

def parse(text: str, origin: str, matrix: Matrix) -> Fleet:
    """Return the fleet a ``kubectl get nodes -o json`` or ``scontrol show node --json`` output describes."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "nesting"
        raise BadInput(f"--fleet {origin}: not JSON ({where}); pass `kubectl get nodes -o json` or "
                       "`scontrol show node --json` output") from None
    if isinstance(doc, dict) and isinstance(doc.get("items"), list) and str(doc.get("kind", "")).endswith("List"):
        return _kubernetes(doc["items"], origin, matrix)
    if isinstance(doc, dict) and doc.get("kind") == "Node":
        return _kubernetes([doc], origin, matrix)
    if isinstance(doc, dict) and isinstance(doc.get("nodes"), list):
        from resolver.fleet_slurm import slurm_fleet

        return slurm_fleet(doc["nodes"], origin, matrix)
    raise BadInput(f"--fleet {origin}: JSON, but neither a Kubernetes node list (kind List, items) nor Slurm's "
                   "node output (nodes); pass `kubectl get nodes -o json` or `scontrol show node --json` output")


def _text(value: Any, what: str) -> str:
    """Return ``value`` as a string fit for messages, Dockerfile comments and YAML: one line, at most 200 chars."""
    from resolver.inputs import check_text

    return check_text(str(value), what, hint="the cluster's output was altered; pass it as the client printed it")


def _int(value: Any, what: str) -> int:
    text = str(value)
    if not re.fullmatch(r"[0-9]{1,9}", text):  # ASCII digits only: int() would take "٣" and " 7\n"
        raise BadInput(f"{what} = {value!r}: not a whole number")
    return int(text)


def _classes(nodes: Iterable[Node]) -> tuple[GpuClass, ...]:
    groups: dict[tuple[object, ...], list[Node]] = {}
    for n in nodes:
        key = (n.gpu.compute_capability, n.driver, n.platform, n.os, n.mig)
        groups.setdefault(key, []).append(n)
    out = []
    for members in groups.values():
        first = members[0]
        names = list(dict.fromkeys(m.gpu.name for m in members))
        gpu = first.gpu if len(names) == 1 else Gpu(" / ".join(names), first.gpu.compute_capability)
        out.append(GpuClass(gpu, first.driver, first.platform, first.os, first.mig, tuple(members)))
    # Oldest GPU first, then oldest driver: the classes most likely to limit a shared stack lead.
    out.sort(key=lambda c: (c.gpu.compute_capability, c.driver or Version("0"), c.platform, c.os or "", c.mig))
    return tuple(out)


def _gpu(product: str, cc: ComputeCapability | None, memory_mib: int | None, where: str, matrix: Matrix) -> Gpu:
    """Return the GPU of a product name: the capability the node reports, else the GPU table's (gpus.toml)."""
    from resolver.gpus import find_gpu_row, lookup_gpu, normalize_name

    base = re.sub(r"[-_ ]?MIG[-_ ].*$", "", product, flags=re.IGNORECASE) or product
    row = find_gpu_row(base, matrix)
    if cc is not None:
        return Gpu(row.nvidia_smi_names[0] if row and row.nvidia_smi_names else base.replace("-", " "), cc, memory_mib)
    if row is not None:
        return Gpu(row.nvidia_smi_names[0] if row.nvidia_smi_names else row.name, row.compute_capability, memory_mib)
    try:
        g = lookup_gpu(base.replace("_", " "), matrix)
    except BadInput:
        raise BadInput(f"{where}: unknown GPU product {product!r} and no compute capability given; add the node's "
                       "nvidia.com/gpu.compute.major/minor labels (GPU Feature Discovery sets them), or add the "
                       "product to matrices/gpus.toml") from None
    # A short gres type ("a100", "tesla_v100") stands for the models it names: show it as NVIDIA writes them.
    return Gpu(normalize_name(base).upper() if g.name == base.replace("_", " ") else g.name, g.compute_capability,
               memory_mib)


# Kubernetes ------------------------------------------------------------------------------------------------------

def _k8s_platform(name: str, info: Mapping[str, Any], origin: str) -> str:
    arch = str(info.get("architecture") or "")
    system = str(info.get("operatingSystem") or "linux")
    plat = _PLATFORM.get((system, _K8S_ARCH.get(arch, arch)))
    if not arch:
        raise BadInput(f"--fleet {origin}: node {name}: no status.nodeInfo.architecture; pass the full "
                       "`kubectl get nodes -o json` output")
    if plat is None:
        raise BadInput(f"--fleet {origin}: node {name}: {system}/{arch} is not a platform gpustack plans for "
                       "(linux amd64, linux arm64, windows amd64); select the other nodes")
    return plat


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _k8s_node(item: Any, origin: str, matrix: Matrix, read: set[str]) -> Node | str:
    """Return the node, or why it is skipped (no GPU)."""
    if not isinstance(item, dict):
        raise BadInput(f"--fleet {origin}: an item of the node list is not an object")
    meta = _obj(item, "metadata")
    name = _text(meta.get("name") or "?", f"--fleet {origin}: a node name")
    labels = {str(k): str(v) for k, v in _obj(meta, "labels").items()}
    status = _obj(item, "status")
    capacity = _obj(status, "capacity")
    info = _obj(status, "nodeInfo")
    where = f"--fleet {origin}: node {name}"
    gfd = sorted(k for k in labels if k.startswith(GFD) and not k.startswith(GFD + "gpu.deploy.")
                 and k != GFD + "gpu.present")
    cap = str(capacity.get("nvidia.com/gpu", "0"))
    if not gfd:
        if cap not in ("", "0"):
            raise BadInput(f"{where}: has {cap} nvidia.com/gpu in status.capacity but no GPU Feature Discovery "
                           "labels; deploy GFD (or the GPU operator) so the node says which GPU it has")
        if labels.get(GFD + "gpu.present") == "true":
            raise BadInput(f"{where}: nvidia.com/gpu.present=true but no GPU Feature Discovery labels yet; wait for "
                           "GFD to label it, or leave the node out of the file")
        return "no NVIDIA GPU (no nvidia.com/gpu.* labels, no nvidia.com/gpu capacity)"
    missing = [k for k in (_PRODUCT, _COUNT, _DRV[0], _DRV[1]) if not labels.get(k)]
    if bool(labels.get(_CC_MAJOR)) != bool(labels.get(_CC_MINOR)):
        missing.append(_CC_MINOR if labels.get(_CC_MAJOR) else _CC_MAJOR)
    if missing:
        raise BadInput(f"{where}: GPU Feature Discovery labels incomplete, missing {', '.join(missing)}; "
                       "relabel the node (restart GFD) or leave it out of the file")
    for key in (_PRODUCT, _MEMORY, _MIG_STRATEGY):
        if key in labels:
            _text(labels[key], f"{where}: {key}")
    count = _int(labels[_COUNT], f"{where}: {_COUNT}")
    if labels.get(_MIG_STRATEGY) == "mixed":  # gpu.count holds the whole GPUs; each MIG profile has its own count
        count += sum(_int(v, f"{where}: {k}") for k, v in labels.items() if _MIXED_COUNT.match(k) and v)
    if count == 0:
        return f"{_COUNT}=0"
    cc = None
    if labels.get(_CC_MAJOR):
        cc = ComputeCapability(_int(labels[_CC_MAJOR], f"{where}: {_CC_MAJOR}"),
                               _int(labels[_CC_MINOR], f"{where}: {_CC_MINOR}"))
        read.update((_CC_MAJOR, _CC_MINOR))
    parts = [labels[k] for k in _DRV if labels.get(k)]
    driver_text = ".".join(str(_int(p, f"{where}: nvidia.com/cuda.driver.*")) for p in parts)
    memory = _int(labels[_MEMORY], f"{where}: {_MEMORY}") if labels.get(_MEMORY) else None
    strategy = labels.get(_MIG_STRATEGY, "none")
    mig = "off"
    if strategy == "single" and _MIG_PROFILE.search(labels[_PRODUCT]):
        mig = "single " + _MIG_PROFILE.search(labels[_PRODUCT]).group(1).lower()  # type: ignore[union-attr]
        memory = None  # per MIG device, not per GPU
    elif strategy == "mixed":
        profiles = sorted(m.group(1) for k, v in labels.items() if (m := _MIXED_COUNT.match(k)) and v not in ("", "0"))
        if profiles:
            mig = "mixed " + ",".join(profiles)
            read.update(k for k in labels if _MIXED_COUNT.match(k))
    if strategy != "none" or _MIG_STRATEGY in labels:
        read.add(_MIG_STRATEGY)
    runtime = ".".join(labels[k] for k in _RUNTIME if labels.get(k)) or None
    read.update(k for k in (_PRODUCT, _COUNT, _MEMORY, _FAMILY, *_DRV, *_RUNTIME) if labels.get(k))
    plat = _k8s_platform(name, info, origin)
    read.update(("status.nodeInfo.architecture", "status.nodeInfo.operatingSystem"))
    os_image = _text(info["osImage"], f"{where}: osImage") if info.get("osImage") else None
    if os_image:
        read.add("status.nodeInfo.osImage")
    gpu = _gpu(labels[_PRODUCT], cc, memory, where, matrix)
    return Node(name, labels[_PRODUCT], gpu, count, plat, Version(driver_text), os_image, mig, runtime)


def _kubernetes(items: Sequence[Any], origin: str, matrix: Matrix) -> Fleet:
    nodes: list[Node] = []
    skipped: list[tuple[str, str]] = []
    read: set[str] = set()
    for item in items:
        got = _k8s_node(item, origin, matrix, read)
        if isinstance(got, Node):
            nodes.append(got)
        else:
            skipped.append((str(_obj(item, "metadata").get("name") or "?"), got))
    return _fleet(origin, "kubernetes", nodes, skipped, read, len(items))


def _fleet(origin: str, kind: str, nodes: list[Node], skipped: list[tuple[str, str]], read: set[str],
           total: int) -> Fleet:
    if not nodes:
        raise BadInput(f"--fleet {origin}: none of its {total} {kind} nodes has an NVIDIA GPU; pass the cluster "
                       "that runs the GPU work, or plan with --gpu / --cpu")
    return Fleet(origin, kind, _classes(nodes), tuple(skipped), tuple(sorted(read)),
                 driver_unknown=any(n.driver is None for n in nodes))
