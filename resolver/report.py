"""Progress hooks in the resolvelib style: every hook does nothing by default.

The CLI's reporter prints; tests' reporters record. No logic lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resolver.refusal import Refusal

__all__ = ["Reporter"]


class Reporter:
    """Receives events from the stages. Subclass and override what you need."""

    def detected(self, what: str, value: str, source: str) -> None:
        """Called once per detected fact, with where it came from (``nvml``, ``nvidia-smi``, ``/proc``...)."""

    def rejected(self, refusal: Refusal, with_torch: str = "") -> None:
        """Called when the solver drops a candidate: ``refusal.package`` / ``candidate`` name it (``torch``
        ``2.15.0+cu132``), its kind and facts say why; ``with_torch`` is the torch build a companion was tried beside."""

    def pinned(self, package: str, candidate: str) -> None:
        """Called when the solver settles on a candidate. Not called if the solve fails."""

    def step_started(self, index: int, total: int, description: str) -> None:
        """Called before an install/build step runs."""

    def step_finished(self, index: int, total: int, description: str, seconds: float) -> None:
        """Called after an install/build step succeeded."""

    def message(self, text: str) -> None:
        """A line for the user (warnings, restores)."""
