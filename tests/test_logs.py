"""resolver.logs: loggers that import ``logging`` only when a record could be seen, and show what logging would."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)


def test_an_install_run_imports_no_logging_and_drops_debug_records() -> None:
    done = _child("""
        import sys
        from resolver import _subprocess, install, envstate
        from resolver.logs import Logger
        _subprocess.run([sys.executable, "-c", "pass"])  # logs a debug record
        Logger("gpustack.test").info("not shown %s", 1)
        print("logging" in sys.modules)
    """)
    assert done.stdout.strip() == "False"
    assert done.stderr == ""


def test_a_warning_reaches_stderr_without_configuration_as_logging_would() -> None:
    done = _child("""
        from resolver.logs import Logger
        Logger("gpustack.test").warning("could not put back %s", "torch")
    """)
    assert done.stderr == "could not put back torch\n"


def test_configured_logging_gets_every_record_with_its_name_and_caller() -> None:
    done = _child("""
        import logging, sys
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(levelname)s %(funcName)s: %(message)s")
        from resolver.logs import Logger
        def caller():
            log = Logger("gpustack.test")
            log.debug("d %d", 1)
            log.info("i")
            log.warning("w")
        caller()
    """)
    assert done.stdout.splitlines() == ["gpustack.test DEBUG caller: d 1", "gpustack.test INFO caller: i",
                                        "gpustack.test WARNING caller: w"]
