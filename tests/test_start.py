"""resolver.start: the collector is paused for the start-up imports and back on, with them frozen, for the command."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(argv: list[str]) -> list[str]:
    code = textwrap.dedent(f"""
        import gc, importlib, sys
        seen = []
        real = importlib.import_module
        def spy(name, *a):
            if name.startswith("resolver.cmd_"):
                seen.append(f"importing {{name}}: gc on={{gc.isenabled()}}")
            return real(name, *a)
        importlib.import_module = spy
        sys.argv = ["gpustack", *{argv!r}]
        from resolver.start import main
        try:
            main()
        except SystemExit:
            pass
        seen.append(f"after: gc on={{gc.isenabled()}} frozen={{gc.get_freeze_count() > 1000}}")
        print("\\n".join(seen), file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return done.stderr.splitlines()[-2:]


def test_the_collector_is_off_while_the_command_loads_and_on_for_its_work(tmp_path: object) -> None:
    assert _run(["cache", "list"]) == ["importing resolver.cmd_install: gc on=False",
                                       "after: gc on=True frozen=True"]


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    code = textwrap.dedent("""
        import gc, sys
        gc.disable()
        sys.argv = ["gpustack", "cache", "list"]
        from resolver.start import main
        try:
            main()
        except SystemExit:
            pass
        print(gc.isenabled())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False"
