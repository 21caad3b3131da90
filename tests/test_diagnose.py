"""``resolver.diagnose`` on real captured outputs (H100, tests/data/failures/h100_*) and synthesized ones (synth_*)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from resolver.diagnose import diagnose, environment_checks, slow_backends

DATA = Path(__file__).parent / "data" / "failures"

# The probe's facts on the H100 the captures come from (tests/data/failures/h100_*.txt).
H100: dict[str, Any] = {
    "torch": "2.11.0+cu130", "torch_cuda": "13.0", "driver_cuda": 13000, "cuda_available": True,
    "gpus": [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}],
    "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
    "packages": {"torch": "2.11.0+cu130", "xformers": "0.0.35"},
    "xformers_build": {"version": {"cuda": 1208, "torch": "2.10.0+cu128", "python": "3.10.19"},
                       "env": {"TORCH_CUDA_ARCH_LIST": "7.5 8.0+PTX 8.0 9.0a"}},
}


def text(name: str) -> str:
    return (DATA / name).read_text()


def test_real_xformers_load_failure_names_the_build_and_the_fix() -> None:
    d = diagnose(text("h100_xformers0.0.35_load_failure.txt"), returncode=0, env_facts={**H100, "backend": "xformers"})
    assert d.kind == "xformers_abi"
    assert "xformers 0.0.35 was built for torch 2.10.0+cu128" in d.message
    assert "you have 2.11.0+cu130" in d.message and "libcudart.so.12" in d.message
    assert d.hint and "cu130 variant" in d.hint and "https://download.pytorch.org/whl/cu130" in d.hint
    assert "gpustack build" in d.hint


def test_real_xformers_info_warning_is_parsed_without_metadata() -> None:
    d = diagnose(text("h100_torch2.11_xformers0.0.35_info.txt"), returncode=0, env_facts={"torch": "2.11.0+cu130"})
    assert d.kind == "xformers_abi" and "built for torch 2.10.0+cu128 (CUDA 12.8)" in d.message


def test_real_verify_child_output_is_diagnosed() -> None:
    d = diagnose(text("h100_xformers0.0.35_verify_child.txt"), returncode=0, env_facts=H100)
    assert d.kind == "xformers_abi" and "root cause: libcudart.so.12" in d.message


def test_no_operator_found_alone_uses_the_recorded_build() -> None:
    out = ("NotImplementedError: No operator found for `memory_efficient_attention_forward` with inputs:\n"
           "`cutlassF-pt` is not supported because:\n    xFormers wasn't build with CUDA support\n")
    d = diagnose(out, returncode=0, env_facts=H100)
    assert d.kind == "xformers_abi" and "2.10.0+cu128" in d.message


def test_no_operator_found_for_other_reasons() -> None:
    out = "NotImplementedError: No operator found for `memory_efficient_attention_forward`\n  dtype=torch.float64"
    assert diagnose(out, returncode=0, env_facts={}).kind == "no_operator"


@pytest.mark.parametrize(
    ("name", "returncode", "kind", "in_message", "in_hint"),
    [
        ("synth_no_kernel_image.txt", 1, "no_kernel_image", "sm_90", "TORCH_CUDA_ARCH_LIST=9.0"),
        ("synth_undefined_symbol.txt", 3, "undefined_symbol", "flash_attn_2_cuda", "torch 2.11.0+cu130"),
        ("synth_ampere.txt", 1, "gpu_too_old", "sm_75", "SDPA"),
        ("synth_oom.txt", 1, "out_of_memory", "out of memory", "nvidia-smi"),
        ("synth_driver_too_old.txt", 3, "driver_too_old", "CUDA 13.0", "driver"),
        ("synth_segfault.txt", -11, "crash", "SIGSEGV", "rebuild"),
        ("synth_libcudart_flash_attn.txt", 3, "missing_cuda_library", "libcudart.so.12", "cu130"),
    ],
)
def test_synthesized_failures(name: str, returncode: int, kind: str, in_message: str, in_hint: str) -> None:
    facts = dict(H100)
    if name == "synth_ampere.txt":
        facts["gpus"] = [{"name": "Tesla T4", "compute_capability": "7.5"}]
    if name == "synth_driver_too_old.txt":
        facts["driver_cuda"] = 12020
    d = diagnose(text(name), returncode=returncode, env_facts={**facts, "backend": "sageattention"})
    assert d.kind == kind, d
    assert in_message in d.message
    assert d.hint and in_hint in d.hint


def test_timeout() -> None:
    d = diagnose("", returncode=None, env_facts={"backend": "xformers", "timeout": 120.0})
    assert d.kind == "timeout" and "xformers did not finish within 120.0 s" in d.message and d.hint


def test_wrong_result_and_unknown() -> None:
    d = diagnose("sdpa-flash forward bfloat16 B2: max abs error 0.5 exceeds tolerance [0.02, 0.005]", returncode=0,
                 env_facts={"backend": "sdpa-flash"})
    assert d.kind == "wrong_result" and "0.5" in d.message
    assert diagnose("something odd\n", returncode=1, env_facts={}) .message == "something odd"


def test_environment_checks_on_the_h100() -> None:
    checks = {c.name: c for c in environment_checks(H100)}
    assert checks["arch"].ok and "SASS" in checks["arch"].message
    assert checks["driver"].ok
    assert not checks["xformers build"].ok and "2.10.0+cu128" in checks["xformers build"].message


def test_environment_checks_find_missing_arch_ptx_and_old_driver() -> None:
    facts = {**H100, "arch_list": ["sm_80", "sm_86"], "driver_cuda": 12040, "xformers_build": None}
    checks = {c.name: c for c in environment_checks(facts)}
    assert not checks["arch"].ok and checks["arch"].severity == "error" and "sm_90" in (checks["arch"].hint or "")
    assert not checks["driver"].ok and checks["driver"].severity == "error"
    ptx = {c.name: c for c in environment_checks({**H100, "arch_list": ["sm_80", "compute_80"]})}
    assert not ptx["arch"].ok and ptx["arch"].severity == "warning" and "PTX" in ptx["arch"].message


def test_slow_backend_flagged_against_best_non_math() -> None:
    timings = [("sdpa-cudnn", "forward", 672.3), ("sdpa-flash", "forward", 355.2),
               ("sdpa-efficient", "forward", 175.8), ("sdpa-math", "forward", 23.2),
               ("xformers", "triton_splitKF", 10.0), ("flash-attn", "flash_attn_func.forward", 90.0)]
    flagged = slow_backends(timings)
    assert [c.message.split()[0] for c in flagged] == ["flash-attn"]
    assert flagged[0].severity == "warning" and "TORCH_CUDA_ARCH_LIST" in (flagged[0].hint or "")
    assert flagged[0].subject == ("flash-attn", "flash_attn_func.forward")  # verify finds its row by value


def test_a_native_kernel_of_an_older_family_is_not_told_to_rebuild() -> None:
    # H200, flash-attn-4 4.0.0b36 over torch 2.11: torch's mem-efficient kernel is natively 4x slower than FA4.
    timings = [("flash-attn-4", "flash_attn_func.forward", 701.0), ("sdpa-cudnn", "forward", 672.0),
               ("sdpa-flash", "forward", 357.0), ("sdpa-efficient", "forward", 173.0),
               ("xformers", "cutlassF-pt", 170.0), ("xformers", "fa2F@2.5.7-pt", 350.0)]
    assert slow_backends(timings) == []
    flagged = slow_backends([*timings, ("xformers", "fa3F@2.8.3", 120.0), ("sageattention", "sageattn.forward", 50.0)])
    assert [(c.message.split()[:2]) for c in flagged] == [["xformers", "fa3F@2.8.3"], ["sageattention", "sageattn.forward"]]
    assert "of flash-attn-4 flash_attn_func.forward (701.0)" in flagged[0].message


def test_a_torch_that_does_not_run_here_gets_a_solved_torch_to_install() -> None:
    """An H100 on a driver that runs CUDA 12.4 with torch 2.11.0+cu130, then with a cu118-only arch list: the hint
    names a torch build gpustack's solver finds for this GPU, Python and driver, and it plans."""
    from click.testing import CliRunner

    from resolver.cli import main

    facts = {**H100, "python": "3.12.3", "driver": "550.54.15", "driver_cuda": 12040}
    checks = {c.name: c for c in environment_checks(facts)}
    hint = checks["driver"].hint or ""
    assert hint.startswith("upgrade the driver to one that runs CUDA 13.0, or install torch 2.11.0+cu12"), hint
    version = hint.split("install torch ")[1].split()[0]
    result = CliRunner().invoke(main, ["plan", "--json", "--gpu", "H100", "--python", "3.12", "--driver", "550.54.15",
                                       f"torch=={version}"])
    assert result.exit_code == 0, result.output
    old = {**facts, "arch_list": ["sm_50", "sm_60", "sm_70"]}
    arch = {c.name: c for c in environment_checks(old)}["arch"]
    assert "it has sm_90 code and runs on this driver" in (arch.hint or "")


def test_xformers_built_for_another_torch_gets_the_solvers_xformers() -> None:
    facts = {**H100, "python": "3.12.3", "driver": "580.65.06"}
    check = {c.name: c for c in environment_checks(facts)}["xformers build"]
    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["plan", "--json", "--gpu", "H100", "--python", "3.12", "--driver", "580.65.06",
                                       "torch==2.11.0+cu130", "xformers"])
    chosen = next(p for p in json.loads(result.stdout)["packages"] if p["name"] == "xformers")
    assert check.hint == (f"install xformers {chosen['version']} built for torch 2.11.0+cu130 (the solver's choice for "
                          f"it here): pip install --force-reinstall --no-deps xformers=={chosen['version']} "
                          f"--index-url {chosen['index_url']}")


def test_a_package_that_is_not_installed_is_said_so_not_rebuilt() -> None:
    # verify without torch printed "install a torch build made for torch your torch, or rebuild it against it"
    from resolver.diagnose import diagnose

    d = diagnose("Traceback (most recent call last):\nModuleNotFoundError: No module named 'torch'\n", returncode=1,
                 env_facts={"backend": "torch"})
    assert (d.kind, d.message) == ("not_installed", "torch is not installed in this environment")
    assert d.hint == "install it with `gpustack install torch`, which picks the build for this machine"
    d = diagnose("ImportError: libcudart.so.11.0: cannot open shared object file", returncode=1,
                 env_facts={"backend": "torch"})
    assert "made for torch" not in (d.hint or "")


def test_the_torch_suggested_installs_on_the_probed_glibc() -> None:
    """The probe reports its interpreter's glibc (and platform), and the machine target the hint is solved for
    carries it (pipeline.glibc_for): torch 2.11's wheels are manylinux_2_28, so a glibc 2.28 host is told to install
    torch 2.11.0+cu128 (and `plan --glibc 2.28` agrees), a glibc 2.17 host is not (`plan --glibc 2.17` refuses it;
    before, the hint named it there too)."""
    from click.testing import CliRunner

    from resolver.cli import main

    facts = {**H100, "python": "3.12.3", "platform": "linux_x86_64", "driver": "550.54.15", "driver_cuda": 12040}
    plan = ["plan", "--json", "--gpu", "H100", "--python", "3.12", "--driver", "550.54.15", "torch==2.11.0+cu128"]
    for glibc, named, code in (("2.28", True, 0), ("2.17", False, 1)):
        hint = {c.name: c for c in environment_checks({**facts, "glibc": glibc})}["driver"].hint or ""
        assert ("install torch 2.11.0+cu128" in hint) is named, (glibc, hint)
        assert hint.startswith("upgrade the driver to one that runs CUDA 13.0"), hint
        assert CliRunner().invoke(main, [*plan, "--glibc", glibc]).exit_code == code, glibc


def test_the_verify_probe_reports_its_platform_and_glibc() -> None:
    """The child's probe reads both through probe_env.py beside it (one reading of each), run as the script it is."""
    import importlib.util

    from resolver._child import probe_env
    from resolver.verify import CHILD_SCRIPT

    spec = importlib.util.spec_from_file_location("verify_kernels_probe_test", CHILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    env = child._probe_env()
    assert (env.platform_tag(), env.glibc_version()) == (probe_env.platform_tag(), probe_env.glibc_version())
