"""Errors raised by gpustack. The CLI turns every ``GpuStackError`` into one line and exit code 2
(``NoCompatibleStack`` exits 1: the input was fine, the world has no answer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resolver.refusal import Alternative, Refusal

__all__ = [
    "GpuStackError",
    "BadInput",
    "InvalidMatrix",
    "DetectionError",
    "CommandFailed",
    "NoCompatibleStack",
]


class GpuStackError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class BadInput(GpuStackError, ValueError):
    """Something the user typed is wrong. The message names the input and the next step."""


class InvalidMatrix(GpuStackError, ValueError):
    """A matrix file breaks the schema or is inconsistent. ``context`` is ``file: row: field``."""

    def __init__(self, message: str, context: str) -> None:
        super().__init__(message, context)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return f"{self.context}: {self.message}"


class DetectionError(GpuStackError):
    """Reading the machine failed in a way that is not simply "no GPU"."""

    exit_code = 1


class CommandFailed(GpuStackError):
    """A child process exited non-zero."""

    exit_code = 1

    def __init__(self, argv: Sequence[str], returncode: int, output_tail: str = "", log_path: str | None = None) -> None:
        super().__init__(argv, returncode, output_tail, log_path)
        self.argv = list(argv)
        self.returncode = returncode
        self.output_tail = output_tail
        self.log_path = log_path

    def __str__(self) -> str:
        cmd = " ".join(self.argv)
        msg = f"command failed with exit code {self.returncode}: {cmd}"
        if self.log_path:
            msg += f" (full log: {self.log_path})"
        if self.output_tail:
            msg += "\n" + self.output_tail.rstrip()
        return msg


class NoCompatibleStack(GpuStackError):
    """The solver found no stack. ``reasons`` holds one entry per blocking fact; ``alternatives`` what would work
    (``resolver.refusal.Alternative`` values: what each changes, and its text)."""

    exit_code = 1

    def __init__(self, reasons: Sequence[Refusal], alternatives: Sequence[Alternative] = ()) -> None:
        from resolver.refusal import ordered

        if any(isinstance(r, str) for r in reasons):
            raise TypeError("a refusal is a resolver.refusal.Refusal value (kind, facts), not text")
        if any(isinstance(a, str) for a in alternatives):
            raise TypeError("an alternative is a resolver.refusal.Alternative value (change, facts), not text")
        self.refusals: list[Refusal] = ordered(reasons)  # root blocking facts first, each once
        self.reasons = [r.text for r in self.refusals]
        self.alternatives: list[Alternative] = list(alternatives)
        super().__init__(self.reasons, [a.text for a in self.alternatives])

    def to_dict(self) -> dict[str, Any]:
        """The refusal as ``plan --json`` prints it (docs/plan-json.md)."""
        return {"ok": False, "reasons": self.reasons, "alternatives": [a.to_dict() for a in self.alternatives],
                "refusals": [r.to_dict() for r in self.refusals]}

    def __str__(self) -> str:
        lines = ["no compatible stack:"] + [f"  - {r}" for r in self.reasons]
        if self.alternatives:
            lines.append("what would work instead:")
            lines += [f"  - {a.text}" for a in self.alternatives]
        return "\n".join(lines)
