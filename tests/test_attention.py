"""FlashAttention-3, flash-attn-4, SageAttention 1/2 and flash-attn 1.x as solved packages (matrices/attention.toml)."""

from __future__ import annotations

import pytest
from packaging.version import Version

from resolver import matrix
from resolver.attention_rows import parse_rows
from resolver.errors import InvalidMatrix, NoCompatibleStack
from resolver.models import ComputeCapability, Gpu, Stack, Target
from resolver.plan import make_plan
from resolver.request import parse_request
from resolver.solve import solve

M = matrix.load()


def target(cc: str, python: str = "3.12", driver: str | None = "580.65.06", nvcc: str | None = None) -> Target:
    return Target(gpus=(Gpu(f"sm_{cc}", ComputeCapability.parse(cc)),), python=python, platform="linux_x86_64",
                  driver=Version(driver) if driver else None, nvcc=Version(nvcc) if nvcc else None)


def stack(cc: str, *reqs: str, **kw: object) -> Stack:
    return solve(target(cc, **kw), M, parse_request(list(reqs), M))  # type: ignore[arg-type]


def refusal(cc: str, *reqs: str) -> NoCompatibleStack:
    with pytest.raises(NoCompatibleStack) as info:
        stack(cc, *reqs)
    return info.value


def pkg(s: Stack, name: str):  # type: ignore[no-untyped-def]
    return next(p for p in s.packages if p.name == name)


def test_every_row_has_a_source_and_the_placeholder_is_named() -> None:
    assert {a.name for a in M.attention} == {"flash-attn-3", "flash-attn-4", "sageattention", "flash-attn"}
    assert all(a.source for a in M.attention)
    fa3 = next(a for a in M.attention if a.name == "flash-attn-3")
    assert "placeholder" in fa3.pypi and fa3.method == "source" and "subdirectory=hopper" in (fa3.url or "")


@pytest.mark.parametrize("name", ["flash-attn-3", "flash-attn-4"])
def test_hopper_kernels_are_refused_on_an_a100_with_the_reason(name: str) -> None:
    exc = refusal("8.0", name)
    assert any("8.0 (sm_80)" in r for r in exc.reasons)
    assert "sm_90 only" in exc.reasons[0] if name == "flash-attn-3" else "9.0 to 12.x" in exc.reasons[0]


def test_fa3_is_a_source_build_from_hopper_with_the_build_cutting_switches() -> None:
    s = stack("9.0", "flash-attn-3")
    fa3 = pkg(s, "flash_attn_3")
    assert fa3.method == "source" and fa3.arch_list == "9.0"
    assert fa3.build_env["FLASH_ATTENTION_DISABLE_SM80"] == "TRUE"
    step = next(st for st in make_plan(s).steps if st.package == "flash_attn_3")
    assert step.action == "build" and step.requirement.startswith("flash_attn_3 @ git+https://github.com/Dao-AILab/")
    assert not any("pypi.org/simple" in (st.index_url or "") and st.package == "flash-attn-3" for st in make_plan(s).steps)


def test_fa3_refuses_a_cuda_11_torch_and_old_nvcc() -> None:
    with pytest.raises(NoCompatibleStack) as info:
        solve(target("9.0", python="3.11"), M, parse_request(["flash-attn-3", "torch==2.1.0+cu118"], M))
    assert any("CUDA 12 or 13" in r for r in info.value.reasons)
    with pytest.raises(NoCompatibleStack) as info:
        solve(target("9.0", python="3.11", nvcc="12.1"), M, parse_request(["flash-attn-3", "torch==2.4.1+cu121"], M))
    assert any("needs CUDA >= 12.3" in r for r in info.value.reasons)


def test_fa4_plans_its_dependencies_with_the_cuda_13_libraries_for_a_cuda_13_torch() -> None:
    s = stack("9.0", "flash-attn-4", "torch==2.11.0")
    fa4 = pkg(s, "flash-attn-4")
    assert fa4.method == "wheel" and fa4.version == "4.0.0b36" and fa4.extras == ("cu13",)
    assert "nvidia-cutlass-dsl-libs-cu13==4.8.1" in fa4.constraints
    assert "quack-kernels==0.6.5" in fa4.constraints and "apache-tvm-ffi==0.1.15.post2" in fa4.constraints
    step = next(st for st in make_plan(s).steps if st.package == "flash-attn-4")
    assert step.requirement == "flash-attn-4[cu13]==4.0.0b36"
    assert "torch==2.11.0" in step.constraints and "torch-c-dlpack-ext==0.1.5" in step.constraints


def test_fa4_with_a_cuda_12_torch_takes_no_extra_and_refuses_cuda_11() -> None:
    fa4 = pkg(stack("10.0", "flash-attn-4", "torch==2.8.0+cu128"), "flash-attn-4")
    assert fa4.extras == () and "nvidia-cutlass-dsl-libs-cu13==4.8.1" not in fa4.constraints
    assert "cuda-bindings>=12.8,<13" in fa4.constraints
    exc = refusal("9.0", "flash-attn-4", "torch==2.4.1+cu118")
    assert any("CUDA 12 or 13" in r for r in exc.reasons)


def test_sage_1_is_a_pypi_wheel_and_sage_2_a_per_arch_source_build() -> None:
    s1 = pkg(stack("8.6", "sageattention<2"), "sageattention")
    assert (s1.version, s1.method) == ("1.0.6", "wheel")
    s2 = pkg(stack("8.9", "sageattention>=2"), "sageattention")
    assert s2.method == "source" and s2.build_env["TORCH_CUDA_ARCH_LIST"] == "8.9"
    # 8.7 is only Jetson Orin: refused before any kernel is chosen (PyPI CUDA wheels are not for JetPack, issue 10)
    assert any("Jetson" in r for r in refusal("8.7", "sageattention>=2").reasons)


def test_sage_2_per_arch_cuda_floor() -> None:
    with pytest.raises(NoCompatibleStack) as info:
        solve(target("8.9", python="3.11", nvcc="12.1"), M, parse_request(["sageattention>=2", "torch==2.3.1+cu121"], M))
    assert any("for sm_89 needs CUDA >= 12.4" in r for r in info.value.reasons)
    assert pkg(solve(target("8.0", python="3.11", nvcc="12.1"), M, parse_request(["sageattention>=2", "torch==2.3.1+cu121"], M)),
               "sageattention").arch_list == "8.0"


def test_sage_needs_ampere() -> None:
    assert any("sm_75" in r for r in refusal("7.5", "sageattention").reasons)


def test_flash_attn_3_and_up_points_to_fa3_and_fa4() -> None:
    exc = refusal("9.0", "flash-attn>=3")
    assert "matches no flash-attn 2 release" in exc.reasons[0]
    assert "'flash-attn-3'" in exc.alternatives[0].text and "'flash-attn-4'" in exc.alternatives[0].text


def test_flash_attn_1_serves_turing() -> None:
    fa1 = pkg(stack("7.5", "flash-attn<2"), "flash-attn")
    assert fa1.version == "1.0.9" and fa1.method == "source" and fa1.arch_list == "7.5"


def test_cpu_target_refuses_kernels() -> None:
    cpu = Target(gpus=(), python="3.12", platform="linux_x86_64")
    with pytest.raises(NoCompatibleStack, match="needs an NVIDIA GPU"):
        solve(cpu, M, parse_request(["sageattention"], M))


def test_diffusers_profile_plans_what_fits_and_says_what_was_left_out() -> None:
    r = parse_request([], M, profiles=["diffusers"])
    a100 = solve(target("8.0"), M, r)
    names = {p.name for p in a100.packages}
    assert {"xformers", "flash-attn", "sageattention"} <= names and "flash_attn_3" not in names
    assert any(n.startswith("left out flash-attn-3") and "sm_90 only" in n for n in a100.notes)
    assert pkg(a100, "sageattention").version == "2.2.0"  # diffusers needs sageattention >= 2.1.1
    h100 = solve(target("9.0"), M, r)
    assert "flash_attn_3" in {p.name for p in h100.packages}
    t4 = solve(target("7.5"), M, r)
    assert {p.name for p in t4.packages} <= {"torch", "xformers"}
    assert any(n.startswith("left out sageattention") for n in t4.notes)
    assert any(n.startswith("left out flash-attn") for n in t4.notes)


def test_plan_json_round_trips_extras_and_constraints() -> None:
    from resolver.models import Plan

    p = make_plan(stack("9.0", "flash-attn-4", "torch==2.11.0"))
    back = Plan.from_dict(p.to_dict())
    fa4 = next(c for c in back.stack.packages if c.name == "flash-attn-4")
    assert fa4.extras == ("cu13",) and "quack-kernels==0.6.5" in fa4.constraints
    assert back.to_dict() == p.to_dict()


@pytest.mark.parametrize("row,field", [
    ({"name": "x", "version": "1", "method": "source", "title": "X", "family": "x", "generation": 1,
      "url": "git+https://e/x", "build_env": {"LD_PRELOAD": "/x.so"}}, "build_env"),
    ({"name": "x", "version": "1", "method": "zip"}, "method"),
    ({"name": "x", "version": "1", "method": "wheel", "title": "X", "family": "x", "generation": "2"}, "generation"),
])
def test_bad_rows_name_their_field(row: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidMatrix) as info:
        parse_rows({"release": [row]})
    assert "attention.toml: release[0]: " in str(info.value) and field in str(info.value)


def test_an_offline_install_from_a_local_wheel_keeps_the_extra(tmp_path: object) -> None:
    """install --find-links DIR: flash-attn-4[cu13] becomes DIR/flash_attn_4-...whl[cu13], so the cu13 libs come too."""
    from pathlib import Path

    from resolver.install import _install_requirement
    from resolver.installers import Sources

    folder = Path(str(tmp_path))
    (folder / "flash_attn_4-4.0.0b36-py3-none-any.whl").write_bytes(b"")
    plan = make_plan(stack("9.0", "flash-attn-4", "torch==2.11.0"))
    step = next(st for st in plan.steps if st.package == "flash-attn-4")
    got = _install_requirement(step, Sources((str(folder),), offline=True).local_file(step), plan)
    assert got == f"{folder}/flash_attn_4-4.0.0b36-py3-none-any.whl[cu13]"
