"""``gpustack dockerfile --fleet``: one image for every class of a cluster, checked at start, and where to run it.

``render_fleet(plan, matrix, fleet, classes)`` returns the Dockerfile of ``resolver.dockerfile.render`` (multi-stage,
source builds compiled for the union arch list of the plan's target) with the fleet's classes in its header and an
entrypoint that runs ``gpustack verify --expect <the backends the image promises>`` before the command, so a pod on
a node the image cannot serve fails at start instead of at the first attention call. ``affinity_yaml`` returns
Kubernetes node-affinity snippets on the GPU Feature Discovery labels the fleet was read from. Pure text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from packaging.version import Version

from resolver import __version__
from resolver.dockerfile import VENV
from resolver.fleet import GFD, Fleet, GpuClass
from resolver.matrix_types import Matrix
from resolver.models import GO_ARCH, Plan

__all__ = ["render_fleet", "affinity_yaml", "gpustack_wheel", "VERIFY_VENV"]

VERIFY_VENV = "/opt/gpustack"


def gpustack_wheel() -> str:
    """Return the file name of this gpustack's wheel, which the image installs to run its start-up check."""
    return f"gpustack_resolver-{__version__}-py3-none-any.whl"


def _classes_header(fleet: Fleet, classes: Sequence[GpuClass], driver: Version | None) -> list[str]:
    lines = [f"Fleet read from {fleet.origin} ({fleet.kind}); this image serves:"]
    lines += [f"  {c.describe(driver)}" for c in classes]  # each with the driver it was planned for
    lines.append("The entrypoint runs `gpustack verify` on the node's GPU before the command; set GPUSTACK_VERIFY=0")
    lines.append(f"to skip it. Build with gpustack's wheel next to this file: {gpustack_wheel()}")
    lines.append("(`uv build --wheel -o . <gpustack checkout>` or `pip wheel --no-deps -w . <gpustack checkout>`).")
    return lines


def _entrypoint(plan: Plan) -> list[str]:
    from resolver.install import promised_backends

    python = ".".join(plan.stack.target.python.split(".")[:2])
    wheel = gpustack_wheel()
    expect = ",".join(promised_backends(plan))
    check = (f'if [ "${{GPUSTACK_VERIFY:-1}}" != 0 ]; then {VERIFY_VENV}/bin/gpustack verify '
             f'--python-exe {VENV}/bin/python --expect {expect} || exit 1; fi; exec "$@"')
    return [
        f"# gpustack runs from its own venv, so its dependencies never touch the stack's ({VERIFY_VENV}).",
        f"RUN --mount=type=bind,source={wheel},target=/tmp/{wheel} \\",
        f"    uv venv --python {python} {VERIFY_VENV} \\",
        f"    && uv pip install --no-cache --python {VERIFY_VENV}/bin/python /tmp/{wheel}",
        "ENTRYPOINT " + json.dumps(["/bin/sh", "-c", check, "gpustack-verify"]),
        'CMD ["python"]',
    ]


def render_fleet(plan: Plan, matrix: Matrix, fleet: Fleet, classes: Sequence[GpuClass] | None = None, *,
                 header: Sequence[str] = (), index_url: str | None = None, file_name: str | None = None,
                 driver: Version | None = None) -> str:
    """Return the Dockerfile of ``plan`` for the fleet's ``classes`` (all by default), with the start-up check;
    ``index_url`` is the PyPI mirror and ``file_name`` the name it is written under (``dockerfile.render``);
    ``driver`` the ``--driver`` the classes whose nodes report none were planned for (``GpuClass.describe``)."""
    from resolver.dockerfile import render

    served = tuple(classes) if classes is not None else fleet.classes
    return render(plan, matrix, header=[*_classes_header(fleet, served, driver), *header], final=_entrypoint(plan),
                  index_url=index_url, file_name=file_name)


def _term(c: GpuClass) -> list[str]:
    """Return the YAML lines of one ``nodeSelectorTerm`` matching the nodes of class ``c``."""
    exprs: list[tuple[str, str, list[str]]] = [
        (GFD + "gpu.compute.major", "In", [str(c.gpu.compute_capability.major)]),
        (GFD + "gpu.compute.minor", "In", [str(c.gpu.compute_capability.minor)]),
        ("kubernetes.io/arch", "In", [GO_ARCH.get(c.platform, c.platform)]),
    ]
    if c.driver is not None:
        # The class was solved for this driver; newer drivers in the same branch run what it runs.
        release = c.driver.release
        exprs.append((GFD + "cuda.driver.major", "In", [str(release[0])]))
        if len(release) > 1:
            exprs.append((GFD + "cuda.driver.minor", "Gt", [str(release[1] - 1)]))
    exprs.append((GFD + "gpu.product", "In", list(c.products)))  # MIG single: the product names the profile
    if c.mig.startswith("mixed"):
        exprs.append((GFD + "mig.strategy", "In", ["mixed"]))
    out = [f"        # {c.describe()}", "        - matchExpressions:"]
    for key, op, values in exprs:
        out.append(f"          - key: {key}")
        out.append(f"            operator: {op}")
        out.append("            values: [" + ", ".join(json.dumps(v) for v in values) + "]")
    return out


def affinity_yaml(fleet: Fleet, groups: Sequence[tuple[str, Sequence[GpuClass]]]) -> str:
    """Return one YAML document per ``(image, classes)`` group: a pod-spec ``affinity`` that schedules the image
    only on nodes of those classes (terms are ORed; the expressions of one term are ANDed)."""
    docs = []
    for image, classes in groups:
        lines = [f"# gpustack: node affinity for {image}, from the GPU Feature Discovery labels of {fleet.origin}",
                 "# Paste under the pod template's spec (spec.template.spec of a Deployment or Job).",
                 "affinity:", "  nodeAffinity:", "    requiredDuringSchedulingIgnoredDuringExecution:",
                 "      nodeSelectorTerms:"]
        for c in classes:
            lines += _term(c)
        docs.append("\n".join(lines) + "\n")
    return "---\n".join(docs)
