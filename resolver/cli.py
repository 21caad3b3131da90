"""The ``gpustack`` command: a thin click group over the stages.

Subcommands live in ``resolver/cmd_*.py`` and are imported only when called, so ``gpustack plan`` never pays for
``verify``'s imports. Every ``GpuStackError`` becomes one line on stderr and its exit code (2 for bad input).

Credentials never reach a screen or a log: stderr (errors, warnings, ``-v`` logs, restore messages, build output)
always passes through ``resolver.redact``, and stdout too when it is a terminal. Piped stdout (``plan --json >
plan.json``, ``lock -o -``) stays exact, since it is input to the next command (docs/input.md).
"""

from __future__ import annotations

import importlib
import re
import signal
import sys
from typing import IO, Any

import click

from resolver import __version__
from resolver.errors import GpuStackError
from resolver.start import EARLY, resume_gc

__all__ = ["main", "skip_final_collection", "empty_argument"]

# name -> (module, attribute, one-line help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "detect": ("resolver.cmd_detect", "detect", "Show the GPUs, driver, CUDA toolkit and Python environment found here."),
    "plan": ("resolver.cmd_plan", "plan", "Solve torch/CUDA/xformers/flash-attn for a target and print the plan."),
    "install": ("resolver.cmd_install", "install", "Solve, plan and install into an environment, safely."),
    "download": ("resolver.cmd_install", "download", "Download every file a plan needs, for an offline install."),
    "cache": ("resolver.cmd_install", "cache", "List or clear the cache of source-built wheels."),
    "recover": ("resolver.cmd_install", "recover", "Finish the restore of an install that was killed or cut off."),
    "lock": ("resolver.cmd_lock", "lock", "Write a PEP 751 pylock.toml (or requirements.txt) for a target."),
    "dockerfile": ("resolver.cmd_dockerfile", "dockerfile", "Print a Dockerfile for a target's stack."),
    "check-upgrade": ("resolver.cmd_upgrade", "check_upgrade", "Say whether moving to new versions is safe."),
    "verify": ("resolver.cmd_verify", "verify", "Run every installed attention kernel and check it against a reference."),
    "matrix": ("resolver.cmd_matrix", "matrix", "Show or validate the compatibility matrices."),
}


def skip_final_collection() -> None:
    """Have the interpreter's exit skip its last garbage collection (``gc.freeze`` at exit), which walks every
    object the run made: ~50 ms of a ~0.5 s lock and ~10 ms of an install, measured. A command calls it once its
    work is written and closed (nothing gpustack holds then needs a finalizer; the OS takes the memory back)."""
    global _FREEZE_REGISTERED
    if not _FREEZE_REGISTERED:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _FREEZE_REGISTERED = True


_FREEZE_REGISTERED = False


class _Redacting:
    """A text stream that masks URL credentials in everything written to it (``resolver.redact``)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from resolver.redact import redact

        self._stream.write(redact(text) if "@" in text else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _redact_streams() -> None:
    if not isinstance(sys.stderr, _Redacting):
        sys.stderr = _Redacting(sys.stderr)
    isatty = getattr(sys.stdout, "isatty", None)
    if not isinstance(sys.stdout, _Redacting) and isatty is not None and isatty():
        sys.stdout = _Redacting(sys.stdout)


class _Signalled(BaseException):
    """SIGTERM or SIGHUP outside an install's transaction (which has its own handlers, ``resolver.install``): raised
    where the command is, so its ``finally`` blocks and context managers run (a lock's temporary folder, its uv
    child) instead of the process vanishing mid-way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: Any) -> None:
    raise _Signalled(signum)


_ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


_OPTION_EQUALS = re.compile(r"--[A-Za-z][A-Za-z0-9-]*=")


def empty_argument(argv: list[str]) -> str | None:
    """Return the message for an empty value on the command line (``--venv ''``, ``--venv=``, a bare ``''``), else
    ``None``. No option or argument of gpustack means anything when empty: it is nearly always a shell variable
    that was not set (``--venv "$VENV"``), and taking it as "not given" would act on another environment."""
    for i, arg in enumerate(argv):
        where = f" after {argv[i - 1]}" if i > 0 else ""
        if arg == "":
            return f"an empty value{where} (an unset shell variable?): give it a value, or leave it out"
        if not arg.strip():  # no name, version, path or URL is blank either
            return f"a blank value {arg!r}{where}: give it a value, or leave it out"
        if "\x00" in arg:  # no process's argv can hold one; an in-process caller's can, and no input means one
            return f"a value holding a NUL character{where}: give it without one"
        if _OPTION_EQUALS.fullmatch(arg):
            return f"{arg} with an empty value (an unset shell variable?): give it a value, or leave {arg[:-1]} out"
    return None


def _repeated_option(command: click.Command, ctx: click.Context, args: list[str]) -> str | None:
    """Return the message for an option that takes one value given twice with different values (``--driver 535
    --driver 550``), else ``None``. click keeps the last one silently; for a target, a lock's path or an
    environment that is a guess at what was meant (a script's default and an override it forgot to remove)."""
    single = {o: p for p in command.params if isinstance(p, click.Option) and not p.is_flag and not p.multiple
              and not p.count and p.nargs == 1 for o in p.opts + p.secondary_opts}
    seen: dict[str, tuple[str, str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        name, value = arg, None
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and arg[:2] in single:
            name, value = arg[:2], arg[2:]
        param = single.get(name)
        if param is None:
            if isinstance(command, click.Group) and not arg.startswith("-"):
                sub = command.get_command(ctx, arg)
                return None if sub is None else _repeated_option(sub, ctx, args[i + 1:])
            i += 1
            continue
        if value is None:
            if i + 1 >= len(args):
                return None  # click says the value is missing
            value = args[i + 1]
            i += 1
        i += 1
        first = seen.setdefault(param.name or name, (name, value))
        if first[1] != value:
            return f"{first[0]} given twice ({first[1]!r}, then {value!r}): give it once"
    return None


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        resume_gc()  # paused by resolver.start for the start-up imports
        command = getattr(module, spec[1])
        assert isinstance(command, click.Command)
        return command

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        repeated = _repeated_option(command, ctx, rest) if command is not None else None
        if repeated is not None:
            raise click.UsageError(f"{repeated} (see `{ctx.command_path} {name} --help`)")
        return name, command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, spec[2]) for name, spec in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the CLI; a usage error (unknown option, bad choice) is one line naming it, exit 2, like any bad input."""
        argv = list(sys.argv[1:] if args is None else args)
        early = EARLY.get(argv[0]) if argv else None  # commands that start work before they are imported
        if early is None:
            return self._main(args, prog_name, complete_var, standalone_mode, **extra)
        # start what this command will need before anything else is imported; the command takes it, or it is
        # stopped here
        module = importlib.import_module(early)
        module.begin(argv[1:])
        try:
            return self._main(args, prog_name, complete_var, standalone_mode, **extra)
        finally:
            module.end()

    def _main(self, args: Any, prog_name: str | None, complete_var: str | None, standalone_mode: bool,
              **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        previous = {sig: signal.signal(sig, _raise_signalled) for sig in _ENDING}
        try:
            argv = list(sys.argv[1:] if args is None else args)
            empty = empty_argument(argv)
            if empty is not None:
                raise click.UsageError(empty)
            rc = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            from resolver.inputs import one_line
            from resolver.redact import redact

            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            message = one_line(redact(" ".join(exc.format_message().split())))
            click.echo(f"gpustack: {message}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C outside a command's own handling: said and ended as install says it
            click.echo("gpustack: interrupted (SIGINT)", err=True)
            sys.exit(130)
        except _Signalled as exc:  # SIGTERM/SIGHUP: the command's finally blocks ran (temporary folders, children)
            click.echo(f"gpustack: interrupted ({signal.Signals(exc.signum).name})", err=True)
            sys.exit(128 + exc.signum)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        sys.exit(rc if isinstance(rc, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GpuStackError as exc:
            from resolver.inputs import one_line
            from resolver.redact import redact

            message = redact(str(exc))  # before a cut, which could drop a password's '@'
            click.echo(f"gpustack: {one_line(message) if exc.exit_code == 2 else message}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpustack")
@click.option("-v", "--verbose", is_flag=True, help="Log where each fact came from and every command run.")
def main(verbose: bool) -> None:
    """gpustack: a GPU software stack (torch, its CUDA build, xformers, flash-attn) that works on your GPU and driver."""
    _redact_streams()
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
