"""Every command's options are unique: click only warns about a flag declared twice (and the second silently wins),
so two features adding ``--index-url`` to ``install`` once made every install print two UserWarnings."""
from __future__ import annotations

import click

from resolver.cli import main


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in _commands(cmd, ctx)]
    return out


def test_no_command_declares_a_flag_twice() -> None:
    ctx = click.Context(main)
    commands = _commands(main, ctx)
    assert {"install", "plan", "lock", "dockerfile", "check-upgrade", "recover"} <= {n for n, _ in commands}
    for name, cmd in commands:
        flags = [o for p in cmd.params for o in (*p.opts, *p.secondary_opts)]
        dests = [p.name for p in cmd.params]
        assert len(flags) == len(set(flags)), (name, sorted(f for f in flags if flags.count(f) > 1))
        assert len(dests) == len(set(dests)), (name, sorted(d for d in dests if d and dests.count(d) > 1))
