"""``gpustack detect``: print what ``resolver.detect`` found here, as a table or as JSON."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from resolver.detect import detect as detect_host, format_driver
from resolver.probes import Host

__all__ = ["detect", "render"]

NO_GPU = (
    "No NVIDIA GPU found (no NVML, no nvidia-smi, no /proc/driver/nvidia): this is a CPU target. "
    "Use `gpustack plan --gpu NAME` to plan for another machine."
)


def _or_unknown(value: object | None, unknown: str = "not found") -> str:
    return unknown if value is None else str(value)


def render(host: Host, console: Console) -> None:
    """Print ``host`` for a person: the GPU table (or why there is none), then driver, toolkit, Python, packages."""
    if host.gpus:
        table = Table(title="NVIDIA GPUs", title_justify="left")
        for column in ("#", "Name", "Compute capability", "Memory"):
            table.add_column(column)
        for gpu in host.gpus:
            cc = str(gpu.compute_capability) if gpu.compute_capability else "not reported (looked up by name when solving)"
            memory = f"{gpu.memory_mib} MiB" if gpu.memory_mib is not None else "unknown"
            table.add_row(*(Text(cell) for cell in (str(gpu.index), gpu.name, cc, memory)))
        console.print(table)
        console.print(f"(from {host.sources.get('gpus', '?')})", markup=False, highlight=False)
    elif host.driver is not None:
        console.print(f"No NVIDIA GPU visible, although driver {format_driver(host.driver)} is loaded "
                      "(check CUDA_VISIBLE_DEVICES or the container's GPU flags): this is a CPU target. "
                      "Use `gpustack plan --gpu NAME` to plan for another machine.", markup=False, highlight=False)
    else:
        console.print(NO_GPU, markup=False, highlight=False)

    env = host.env
    rows = [
        ("Driver", _with_source(host, "driver", format_driver(host.driver) if host.driver else None)),
        ("Newest CUDA it runs", _or_unknown(host.driver_cuda, "unknown")),
        ("nvcc", _with_source(host, "nvcc", host.nvcc)),
        ("Python", f"{env.python}  {env.platform}  glibc {_or_unknown(env.glibc, 'none')}  ({env.python_exe})"),
        ("torch", _torch_line(host)),
        ("xformers", _or_unknown(env.xformers, "not installed")),
        ("flash-attn", _or_unknown(env.flash_attn, "not installed")),
        ("CPU cores", str(host.cpu_count)),
        ("Free memory", "unknown" if host.memory_available_gib is None else f"{host.memory_available_gib:.1f} GiB"),
    ]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    for key, value in rows:
        facts.add_row(Text(key), Text(value))
    console.print(facts)
    for note in env.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def _with_source(host: Host, fact: str, value: object | None) -> str:
    source = host.sources.get(fact, "not found")
    return source if value is None else f"{value}  (from {source})"


def _torch_line(host: Host) -> str:
    env = host.env
    if env.torch is None:
        return "not installed"
    parts = [env.torch, f"CUDA {env.torch_cuda}" if env.torch_cuda else "CPU build"]
    if env.torch_arch_list:
        parts.append("archs " + " ".join(env.torch_arch_list))
    if env.torch_cxx11_abi is not None:
        parts.append(f"cxx11 ABI {'on' if env.torch_cxx11_abi else 'off'}")
    return ", ".join(parts)


@click.command("detect")
@click.option("--python-exe", "python_exe", metavar="PATH", default=None,
              help="Interpreter whose installed packages to read (default: the one running gpustack).")
@click.option("--json", "as_json", is_flag=True, help="Print the detected host as JSON.")
def detect(python_exe: str | None, as_json: bool) -> None:
    """Show the GPUs, driver, CUDA toolkit and Python environment found here."""
    host = detect_host(python_exe)
    if as_json:
        click.echo(json.dumps(host.to_dict(), indent=2))
        return
    render(host, Console(highlight=False))
