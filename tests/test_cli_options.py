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


def _every_value_option() -> list[tuple[str, str]]:
    ctx = click.Context(main)
    return [(name, opt) for name, cmd in _commands(main, ctx) for p in cmd.params
            if isinstance(p, click.Option) and not p.is_flag and not p.count for opt in p.opts[:1]]


def test_an_empty_value_for_any_option_of_any_command_is_one_line_exit_2(tmp_path: object) -> None:
    # `--venv "$VENV"` with VENV unset once installed into gpustack's own venv; `--index-url ''` acted as if not given
    import os

    from click.testing import CliRunner

    options = _every_value_option()
    assert ("install", "--venv") in options and ("lock", "-o") in options and len(options) > 40
    cwd = os.getcwd()
    for name, opt in options:
        for args in ([*name.split(), opt, ""], [*name.split(), f"{opt}="] if opt.startswith("--") else None):
            if args is None:
                continue
            out = CliRunner().invoke(main, args)
            lines = out.output.strip().splitlines()
            assert out.exit_code == 2 and len(lines) == 1 and "an empty value" in lines[0], (args, out.output)
            assert os.getcwd() == cwd


def test_an_empty_argument_is_refused_and_a_value_ending_in_equals_is_not(tmp_path: object) -> None:
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["plan", "--cpu", ""])
    assert out.exit_code == 2 and out.output.strip() == ("gpustack: an empty value after --cpu (an unset shell "
                                                         "variable?): give it a value, or leave it out")
    # a URL whose query ends in '=' is a value, not an empty option
    out = CliRunner().invoke(main, ["plan", "--cpu", "--index-url=https://example.com/simple?token=", "--json"])
    assert "an empty value" not in out.output


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch: object) -> None:
    # install said "interrupted (SIGINT)", exit 130; every other command printed click's "Aborted!", exit 1
    import pytest
    from click.testing import CliRunner

    import resolver.cmd_plan

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(resolver.cmd_plan, "plan_for", interrupted)
    out = CliRunner().invoke(main, ["plan", "--cpu"])
    assert out.exit_code == 130 and out.output.strip() == "gpustack: interrupted (SIGINT)"


def test_planning_options_beside_a_plan_or_a_lock_are_refused_not_ignored(tmp_path: object) -> None:
    # requirements, --gpu and --profile given beside --plan were dropped without a word
    from pathlib import Path

    from click.testing import CliRunner

    assert isinstance(tmp_path, Path)
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    out = CliRunner().invoke(main, ["install", "--plan", str(plan), "torch", "--gpu", "A100", "--profile", "audiocraft"])
    assert out.exit_code == 2 and out.output.strip() == (
        f"gpustack: --plan {plan} installs exactly what it says, so the requirements, --gpu, --profile would be "
        f"ignored: drop them, or make a new one with them (`gpustack plan --json`)")
    out = CliRunner().invoke(main, ["install", "--lock", str(plan), "--cpu"])
    assert out.exit_code == 2 and "so --cpu would be ignored: drop it" in out.output
    # a lock names its files by URL: a mirror given to install --lock was ignored; it belongs in the lock
    out = CliRunner().invoke(main, ["install", "--lock", str(plan), "--torch-index-url", "https://m.example/whl",
                                    "--index-url", "https://m.example/simple"])
    assert out.exit_code == 2 and "so --index-url, --torch-index-url would be ignored" in out.output, out.output
    out = CliRunner().invoke(main, ["install", "--plan", str(plan), "--python", "3.11", "--dry-run"])
    assert out.exit_code == 2 and "target: missing" in out.output  # --python is checked, not ignored: allowed


def test_a_failure_that_is_not_the_inputs_exits_1() -> None:
    # a hash mismatch, a failing installer and an unreachable index exited 2, which the README calls bad input
    from resolver.errors import BadInput, CommandFailed
    from resolver.install import InstallFailed
    from resolver.installers import SourceUnreachable

    assert CommandFailed(["uv"], 1).exit_code == 1 and SourceUnreachable("x").exit_code == 1
    assert InstallFailed(CommandFailed(["pip"], 2), None).exit_code == 1
    assert InstallFailed(BadInput("x"), None).exit_code == 2 and BadInput("x").exit_code == 2
