"""Refusals are values: the solver emits them, text and JSON are rendered from them, nothing parses them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.errors import NoCompatibleStack
from resolver.refusal import KINDS, Change, Refusal, advice, alternative, apply, ordered, refusal

ROOT = Path(__file__).resolve().parents[1]


def _refused(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["plan", "--json", *args])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    return data  # type: ignore[no-any-return]


def _texts(data: dict[str, object]) -> list[str]:
    """The alternatives' texts (each alternative is an object: ``text`` and ``change``)."""
    return [a["text"] for a in data["alternatives"]]  # type: ignore[attr-defined]


def test_flash_attn_on_v100_is_a_compute_capability_refusal() -> None:
    data = _refused("--gpu", "V100", "--python", "3.11", "flash-attn")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["kind"] == "compute_capability"
    assert first["package"] == "flash-attn"
    assert first["facts"]["min_cc"] == "8.0"
    assert first["facts"]["compute_capability"] == "7.0"
    assert first["facts"]["gpu"] == "V100"
    # The text users read is the same string, rendered from those facts.
    assert first["text"] == data["reasons"][0] == "flash-attn needs compute capability 8.0; V100 is 7.0"  # type: ignore[index]
    assert first["alternative"] in data["alternatives"]  # type: ignore[operator]
    assert first["alternative"]["change"] == {"target": {}, "request": {"flash_attn": None, "xformers": ""}}


def test_driver_floor_refusal_names_driver_and_floor() -> None:
    data = _refused("--gpu", "A100", "--driver", "440.33", "--python", "3.10")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["kind"] == "driver"
    assert first["package"] == "torch"
    assert first["facts"]["driver"] == "440.33"
    assert first["facts"]["driver_floor"] == "450.80.02"
    assert first["facts"]["cuda"] == "11.3"
    assert first["alternative"] == {"text": "update the NVIDIA driver to >= 450.80.02 for CUDA 11.x builds",
                                    "change": {"target": {"driver": "450.80.02"}, "request": {}}}
    assert first["text"] == data["reasons"][0]  # type: ignore[index]


def test_human_refusal_is_rendered_from_the_same_values() -> None:
    result = CliRunner().invoke(main, ["plan", "--gpu", "V100", "--python", "3.11", "flash-attn"])
    assert result.exit_code == 1
    assert "  - flash-attn needs compute capability 8.0; V100 is 7.0" in result.stdout


def test_explain_and_solve_do_not_parse_messages() -> None:
    for name in ("explain.py", "solve.py"):
        source = (ROOT / "resolver" / name).read_text()
        assert "import re\n" not in source and "re.findall" not in source and "re.match" not in source, name


def test_kinds_are_a_fixed_set_and_root_facts_come_first() -> None:
    with pytest.raises(ValueError):
        Refusal("torch", "", "bogus", {}, "x")
    pin = refusal("xformers", "0.0.22", "torch_pin", "xformers pins torch{pins}", pins="==2.1.0")
    py = refusal("torch", "==2.1.0", "python", "torch{spec} has no wheels for Python {python}", spec="==2.1.0",
                 python="3.13")
    assert [r.kind for r in ordered([pin, py])] == ["python", "torch_pin"]
    assert "other" in KINDS
    exc = NoCompatibleStack([py], [advice("alt")])
    assert exc.reasons == ["torch==2.1.0 has no wheels for Python 3.13"]
    assert [r["kind"] for r in exc.to_dict()["refusals"]] == ["python"]
    assert exc.to_dict()["alternatives"] == [{"text": "alt", "change": None}]
    with pytest.raises(TypeError):  # no module refuses with text any more: a string is a bug, not an ``other``
        NoCompatibleStack(["a plain reason"])  # type: ignore[list-item]
    with pytest.raises(TypeError):  # nor offers an alternative as text: it is a value with its change
        NoCompatibleStack([py], ["a plain alternative"])  # type: ignore[list-item]


def test_apply_changes_target_and_request_and_never_lifts_a_profiles_bound() -> None:
    """``apply`` is the one reading of an alternative's change: target fields are parsed as the CLI would, request
    bounds replace the request's, and a bound a requested profile sets is narrowed (intersected), never lifted."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from resolver.matrix import load
    from resolver.models import ComputeCapability, Gpu, Target
    from resolver.request import parse_request

    m = load()
    target = Target(gpus=(Gpu("A100", ComputeCapability(8, 0)),), python="3.13", platform="linux_x86_64",
                    glibc=Version("2.28"), glibc_assumed=True)
    request = parse_request(["flash-attn"], m, profiles=["audiocraft"])
    change = Change(target={"python": "3.10", "driver": "580.65.06", "glibc": "2.17", "nvcc": "12.8"},
                    request={"torch": ">=2.0", "torch_variant": "cu118", "flash_attn": None, "xformers": "",
                             "kernels": ("flash-attn-3>=3.0",)})
    t, r = apply(change, target, request)
    assert (t.python, str(t.driver), t.glibc, t.glibc_assumed, t.nvcc) == ("3.10", "580.65.6", Version("2.17"), False,
                                                                          Version("12.8"))
    assert r.flash_attn is None and r.torch_variant == "cu118"
    assert r.torch == SpecifierSet(">=2.0") & dict(request.profile_bounds)["torch"]  # narrowed, not lifted
    assert r.xformers == dict(request.profile_bounds)["xformers"]
    assert r.kernels == (("flash-attn-3", SpecifierSet(">=3.0")),)
    assert (target.python, request.flash_attn) == ("3.13", SpecifierSet())  # pure: the inputs are unchanged
    assert apply(Change(target={"gpus": ""}), target, request)[0].is_cpu
    with pytest.raises(ValueError):
        Change(target={"cuda": "12.8"})
    alt = alternative("use Python {span}", Change(target={"python": "3.10"}), Change(target={"python": "3.11"}),
                      span="3.10–3.11")
    assert alt.to_dict() == {"text": "use Python 3.10–3.11", "change": {"target": {"python": "3.10"}, "request": {}},
                             "changes": [{"target": {"python": "3.10"}, "request": {}},
                                         {"target": {"python": "3.11"}, "request": {}}]}


# --- every refusal family, through the real plan / dockerfile commands: kinds and facts, never text matching ---------


def _planned(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["plan", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_attention_kernel_refusal_is_a_value() -> None:
    data = _refused("--gpu", "A100", "--python", "3.12", "flash-attn-3")
    first = data["refusals"][0]  # type: ignore[index]
    assert (first["kind"], first["package"], first["candidate"]) == ("compute_capability", "flash-attn-3", "3.0.0")
    assert first["facts"]["min_cc"] == "9.0" and first["facts"]["compute_capability"] == "8.0"
    assert first["facts"]["max_cc_major"] == "9"
    assert first["text"] == data["reasons"][0]  # type: ignore[index]


def test_attention_kernel_on_another_platform_is_a_platform_refusal() -> None:
    data = _refused("--gpu", "H100", "--python", "3.12", "--platform", "win_amd64", "flash-attn-3")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["kind"] == "platform" and first["facts"]["platform"] == "win_amd64"
    assert "linux_x86_64" in first["facts"]["platforms"]


def test_companion_refusal_carries_the_blocking_kind_and_its_causes() -> None:
    """flash-attn with torch 2.11.0+cu130 and nvcc 12.8: no prebuilt wheel (variant), and nvcc 12.8 cannot build
    against a CUDA 13 torch (toolkit): one refusal of kind toolkit, both causes kept as values."""
    data = _refused("--gpu", "H100", "--driver", "580.65.06", "--python", "3.12", "--nvcc", "12.8",
                    "torch==2.11.0+cu130", "flash-attn")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["kind"] == "toolkit" and first["package"] == "flash-attn"
    assert first["facts"]["nvcc"] == "12.8" and first["facts"]["cuda_major"] == "13"
    assert first["facts"]["with_torch"] == "2.11.0+cu130"
    (grouped,) = first["causes"]
    assert [c["kind"] for c in grouped["causes"]] == ["variant", "toolkit"]
    assert grouped["causes"][0]["facts"]["cuda_major"] == "13"
    # The toolkit alternative is printed because the request solves with that toolkit: check it does.
    (toolkit,) = [a for a in data["alternatives"] if a["text"].startswith("install a CUDA 13.x toolkit")]  # type: ignore[union-attr, index]
    assert toolkit["change"] == {"target": {"nvcc": "13.0"}, "request": {}}
    _planned("--gpu", "H100", "--driver", "580.65.06", "--python", "3.12", "--nvcc", "13.0", "torch==2.11.0+cu130",
             "flash-attn")


def test_fleet_refusal_kinds(tmp_path: Path) -> None:
    fleet = ROOT / "tests" / "fixtures" / "fleet" / "kubectl-nodes.json"
    data = _refused("--fleet", str(fleet), "--python", "3.11", "flash-attn")
    kinds = [r["kind"] for r in data["refusals"]]  # type: ignore[union-attr, index]
    assert kinds[0] == "compute_capability" and kinds[-1] == "fleet"
    lonely = data["refusals"][-1]  # type: ignore[index]
    assert lonely["facts"]["classes"] == "Tesla V100-SXM2-16GB and Tesla T4"
    # A class's own alternative is relayed as ``inner``: its change applies to that class's target, and solves there.
    from resolver.gpus import lookup_gpu
    from resolver.matrix import load
    from resolver.models import Target
    from resolver.request import parse_request
    from resolver.solve import feasible

    m = load()
    (relay,) = [a for a in data["alternatives"] if a["text"].startswith("Tesla V100-SXM2-16GB nodes: ")]  # type: ignore[union-attr, index]
    assert relay["change"] is None and relay["text"].endswith(relay["inner"]["text"])
    inner = Change(relay["inner"]["change"]["target"], relay["inner"]["change"]["request"])
    v100 = Target((lookup_gpu("Tesla V100-SXM2-16GB", m),), "3.11", "linux_x86_64")
    request = parse_request(["flash-attn"], m)
    moved, asked = apply(inner, v100, request)
    assert not feasible(v100, m, request) and feasible(moved, m, asked)
    mixed = json.loads(fleet.read_text())
    for node in mixed["items"]:
        if node["metadata"]["name"] == "gpu-t4-1":
            node["metadata"]["labels"]["kubernetes.io/arch"] = "arm64"
            node["metadata"]["labels"]["beta.kubernetes.io/arch"] = "arm64"
            node["status"]["nodeInfo"]["architecture"] = "arm64"
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps(mixed))
    data = _refused("--fleet", str(path), "--python", "3.11")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["kind"] == "platform" and first["facts"]["platforms"] == "linux_x86_64, linux_aarch64"
    assert first["alternative"] == {"text": "pass --per-class for one plan per class", "change": None}


def test_dockerfile_without_an_image_names_a_solved_torch_build() -> None:
    from resolver.dockerfile import base_image
    from resolver.matrix import load

    with pytest.raises(NoCompatibleStack) as got:
        base_image("10.2", load())
    (image,) = got.value.refusals
    assert (image.kind, image.package, image.facts["cuda"]) == ("image", "nvidia/cuda", "10.2")
    result = CliRunner().invoke(main, ["dockerfile", "--gpu", "V100", "--python", "3.10", "torch==1.12.1+cu102"])
    assert result.exit_code == 1
    assert "torch==1.12.1+cu116: CUDA 11.6 has an nvidia/cuda image and the whole request solves" in result.output
    ok = CliRunner().invoke(main, ["dockerfile", "--gpu", "V100", "--python", "3.10", "torch==1.12.1+cu116"])
    assert ok.exit_code == 0 and "FROM nvidia/cuda:11.6" in ok.output, ok.output


def test_verified_only_refusal_is_kind_unverified() -> None:
    data = _refused("--gpu", "H100", "--driver", "580.65.06", "--python", "3.12", "--verified-only", "flash-attn-3")
    assert {r["kind"] for r in data["refusals"]} == {"unverified"}  # type: ignore[union-attr, index]


def test_explain_decides_by_kind_not_by_text() -> None:
    source = (ROOT / "resolver" / "explain.py").read_text()
    assert '"glibc" in' not in source and " in reason" not in source
    assert "as_refusal" not in (ROOT / "resolver" / "refusal.py").read_text()


# --- alternatives are solved before they are printed (issue 9 item 3) ---------------------------------------------


def test_rtx_5090_with_old_torch_and_xformers_bounds_gets_a_solved_stack() -> None:
    data = _refused("--gpu", "RTX 5090", "--driver", "580.65.06", "--python", "3.12", "torch<2.7", "xformers<0.0.30")
    assert data["refusals"][0]["kind"] == "gpu_code"  # type: ignore[index]
    (alt,) = _texts(data)
    assert alt.startswith("torch==2.15.0+cu132 with xformers==") and "instead of torch<2.7, xformers<0.0.30" in alt
    change = data["alternatives"][0]["change"]["request"]  # type: ignore[index]
    assert (change["torch"], change["torch_variant"]) == ("==2.15.0", "cu132")
    xformers = change["xformers"].removeprefix("==")
    assert f"xformers=={xformers} runs on" in alt
    plan = _planned("--gpu", "RTX 5090", "--driver", "580.65.06", "--python", "3.12", "torch==2.15.0+cu132",
                    f"xformers=={xformers}")
    assert [p["version"] for p in plan["packages"]][:2] == ["2.15.0+cu132", xformers]  # type: ignore[index]


def test_rtx_5090_on_a_570_driver_names_the_build_that_fits_not_only_the_newest() -> None:
    data = _refused("--gpu", "RTX 5090", "--driver", "570.86.15", "--python", "3.12", "torch<2.7")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["facts"]["newest"] == "2.15.0+cu132" and first["facts"]["fits"] == "2.11.0+cu128"
    assert data["alternatives"] == [{"text": "torch==2.11.0+cu128 runs on NVIDIA GeForce RTX 5090",
                                     "change": {"target": {}, "request": {"torch": "==2.11.0", "torch_variant": "cu128"}}}]
    _planned("--gpu", "RTX 5090", "--driver", "570.86.15", "--python", "3.12", "torch==2.11.0+cu128")


def test_xformers_instead_of_flash_attn_only_when_it_solves() -> None:
    offered = _refused("--gpu", "V100", "--driver", "580.65.06", "--python", "3.12", "flash-attn")
    assert any("ask for xformers instead" in a for a in _texts(offered))
    _planned("--gpu", "V100", "--driver", "580.65.06", "--python", "3.12", "xformers")
    # xformers 0.0.22 pins torch 2.0.1, which has no Python 3.12 wheel: nothing about xformers may be offered.
    data = _refused("--gpu", "V100", "--driver", "580.65.06", "--python", "3.12", "flash-attn", "xformers==0.0.22")
    assert not any("xformers" in a for a in _texts(data))
    result = CliRunner().invoke(main, ["plan", "--gpu", "V100", "--driver", "580.65.06", "--python", "3.12",
                                       "xformers==0.0.22"])
    assert result.exit_code == 1


def test_python_alternative_names_only_pythons_that_solve() -> None:
    data = _refused("--gpu", "A100", "--driver", "580.65.06", "--python", "3.13", "--profile", "audiocraft")
    assert data["refusals"][0]["kind"] == "python"  # type: ignore[index]
    (alt,) = data["alternatives"]  # type: ignore[misc]
    assert alt["text"].startswith("use Python 3.8–3.11")
    # One change per Python named, each solved.
    pythons = [c["target"]["python"] for c in alt["changes"]]
    assert alt["change"] == alt["changes"][0] and pythons[0] == "3.8" and pythons[-1] == "3.11"
    for python in pythons:
        _planned("--gpu", "A100", "--driver", "580.65.06", "--python", python, "--profile", "audiocraft")


def test_docs_list_every_kind_in_order() -> None:
    solver = (ROOT / "docs" / "solver.md").read_text()
    rows = [line.split("|")[1].strip().strip("`") for line in solver.splitlines() if line.startswith("| `")]
    assert tuple(rows) == KINDS
    plan_json = (ROOT / "docs" / "plan-json.md").read_text()
    listed = plan_json.split("`kind` is one of ")[1].split("(root first")[0]
    assert tuple(k.strip(" `") for k in listed.replace("\n", " ").split(",")) == KINDS


def test_kernel_that_fits_no_allowed_torch_names_a_solved_torch() -> None:
    data = _refused("--gpu", "H100", "--driver", "580.65.06", "--python", "3.11", "torch==2.1.0", "flash-attn-3")
    assert {r["kind"] for r in data["refusals"]} == {"variant", "torch_pin"}  # type: ignore[union-attr, index]
    alt = _texts(data)[0]
    assert alt.endswith("takes flash-attn-3 on this target (ask for it instead of torch==2.1.0)"), alt
    change = data["alternatives"][0]["change"]["request"]  # type: ignore[index]
    torch = f"torch{change['torch']}+{change['torch_variant']}"
    assert alt.startswith(torch) and change["keep_torch"] is None
    plan = _planned("--gpu", "H100", "--driver", "580.65.06", "--python", "3.11", torch, "flash-attn-3")
    assert [p["name"] for p in plan["packages"]] == ["torch", "flash_attn_3"]  # type: ignore[index, union-attr]


def test_jetson_offers_a_cpu_stack_only_when_the_request_runs_on_a_cpu() -> None:
    args = ["--gpu", "Jetson AGX Orin", "--platform", "linux_aarch64", "--python", "3.10"]
    cpu = {"text": "plan a CPU-only stack with --cpu", "change": {"target": {"gpus": ""}, "request": {}}}
    assert cpu in _refused(*args)["alternatives"]  # type: ignore[operator]
    assert cpu["text"] not in _texts(_refused(*args, "xformers"))


def test_fairseq_needs_refusal_names_a_release_that_has_it_and_solves() -> None:
    args = ("--gpu", "H100", "--driver", "580.65.06", "--python", "3.11", "--profile", "fairseq")
    data = _refused(*args, "xformers>=0.0.34")
    first = data["refusals"][0]  # type: ignore[index]
    assert (first["kind"], first["facts"]["needs"], first["facts"]["versions"]) == (
        "needs", "xformers.components", "0.0.35, 0.0.34")
    version = first["alternative"]["change"]["request"]["xformers"].removeprefix("==")
    assert first["alternative"]["text"].endswith(f"(ask for xformers=={version})")
    plan = _planned(*args, f"xformers=={version}")
    assert next(p["version"] for p in plan["packages"] if p["name"] == "xformers") == version  # type: ignore[union-attr, index]


def test_a_profiles_own_pins_are_never_lifted_by_an_alternative() -> None:
    """AudioCraft pins torch==2.1.0 and xformers<0.0.23 for its own code: on an RTX 5090 (no torch 2.1 has sm_120)
    nothing that drops those pins is offered, while the same bounds typed by the user are lifted, solved."""
    data = _refused("--gpu", "RTX 5090", "--driver", "580.65.06", "--python", "3.11", "--profile", "audiocraft")
    assert data["refusals"][0]["kind"] == "gpu_code" and data["alternatives"] == []  # type: ignore[index]
    typed = _refused("--gpu", "RTX 5090", "--driver", "580.65.06", "--python", "3.11", "torch==2.1.0",
                     "xformers<0.0.23")
    assert _texts(typed)[0].startswith("torch==2.15.0+cu132 with xformers==")


def test_per_class_json_carries_each_refused_class_refusals() -> None:
    fleet = ROOT / "tests" / "fixtures" / "fleet" / "kubectl-nodes.json"
    result = CliRunner().invoke(main, ["plan", "--json", "--fleet", str(fleet), "--per-class", "--python", "3.11",
                                       "flash-attn"])
    assert result.exit_code == 1
    classes = json.loads(result.stdout)["classes"]
    refused = {c["class"]["id"]: c for c in classes if "refusals" in c}
    for entry in refused.values():
        first = entry["refusals"][0]
        assert first["kind"] == "compute_capability" and first["facts"]["min_cc"] == "8.0"
        assert first["text"] == entry["reasons"][0]
    assert len(refused) == 2 and all("plan" in c for c in classes if "refusals" not in c)


def test_flash_attn_3_pointer_only_where_the_later_generations_run() -> None:
    a100 = _refused("--gpu", "A100", "--python", "3.11", "flash-attn>=3")
    assert [r["kind"] for r in a100["refusals"]] == ["no_release", "compute_capability", "compute_capability"]  # type: ignore[union-attr, index]
    assert a100["alternatives"] == []
    h100 = _refused("--gpu", "H100", "--driver", "580.65.06", "--python", "3.11", "flash-attn>=3")
    pointer = h100["alternatives"][0]  # type: ignore[index]
    assert "'flash-attn-3'" in pointer["text"]
    kernels = [c["request"]["kernels"] for c in pointer.get("changes", [pointer["change"]])]
    assert ["flash-attn-3"] in kernels and all(c["request"]["flash_attn"] is None for c in pointer.get("changes", [pointer["change"]]))
    _planned("--gpu", "H100", "--driver", "580.65.06", "--python", "3.11", "flash-attn-3")


def test_the_pointer_changes_name_only_the_generations_the_bound_asks_for() -> None:
    # flash-attn>=4 asks for FlashAttention-4 only: the alternative's text names flash-attn-4, and so must every
    # change it carries (flash-attn-3 is not what was asked, though it also runs on an H100).
    h100 = _refused("--gpu", "H100", "--driver", "580.65.06", "--python", "3.11", "flash-attn>=4")
    pointer = h100["alternatives"][0]  # type: ignore[index]
    assert "'flash-attn-4'" in pointer["text"] and "'flash-attn-3'" not in pointer["text"]
    kernels = [c["request"]["kernels"] for c in pointer.get("changes", [pointer["change"]])]
    assert kernels == [["flash-attn-4"]], kernels


def test_no_python_serves_the_torch_bound_so_the_newest_torch_for_this_python_is_named() -> None:
    args = ("--gpu", "H100", "--platform", "linux_aarch64", "--driver", "570.86.15", "--python", "3.11")
    data = _refused(*args, "torch==1.13.1")
    assert data["refusals"][0]["kind"] == "python"  # type: ignore[index]
    (alt,) = _texts(data)
    assert alt.startswith("torch==2.14.1+cu126: the newest torch with linux_aarch64 wheels for Python 3.11"), alt
    _planned(*args, "torch==2.14.1+cu126")


def test_a_refusal_names_the_binding_conflict_and_offers_what_solves() -> None:
    # s9 trial #6: torch 2.1.0 + xformers + flash-attn 2.8.3 printed eight "xformers 0.0.3x requires torch==..." lines
    # and nothing to do, though xformers 0.0.22.post7 fits torch 2.1.0: flash-attn 2.8.3 (torch >= 2.2) binds.
    target = ["--gpu", "A100", "--driver", "550.54.15", "--python", "3.10"]
    data = _refused(*target, "torch==2.1.0", "xformers", "flash-attn==2.8.3")
    assert {r["package"] for r in data["refusals"]} == {"flash-attn"}, data["refusals"]  # type: ignore[attr-defined]
    assert any("needs torch >= 2.2" in r for r in data["reasons"]), data["reasons"]  # type: ignore[attr-defined]
    texts = _texts(data)
    assert any(t.startswith("torch==2.2.0 takes flash-attn==2.8.3") for t in texts), texts
    assert any(t.startswith("flash-attn==2.7.3 works with the rest") for t in texts), texts
    # each alternative, asked as printed, plans
    for asked in (["torch==2.2.0", "xformers", "flash-attn==2.8.3"], ["torch==2.1.0", "xformers", "flash-attn==2.7.3"]):
        got = CliRunner().invoke(main, ["plan", *target, *asked])
        assert got.exit_code == 0, (asked, got.output)


A100_535 = ["--gpu", "A100", "--driver", "535.216.01", "--python", "3.11", "--glibc", "2.35"]


def test_an_unverified_flash_attn_release_follows_the_documented_rules() -> None:
    # s9 trial #7, docs/matrix.md "How the solver treats unverified = true": 2.8.3.post2's whole row is unverified.
    # 1. it ranks below the verified 2.8.3.post1 (both are source builds for torch 2.14 here)
    got = CliRunner().invoke(main, ["plan", "--json", *A100_535, "flash-attn"])
    data = json.loads(got.stdout)
    fa = next(p for p in data["packages"] if p["name"] == "flash-attn")
    assert fa["version"] == "2.8.3.post1", fa
    assert not any("unverified fact: flash-attn" in n for n in data["notes"]), data["notes"]
    # 2. when asked for, the plan says it relies on an unverified fact, with the row's note
    got = CliRunner().invoke(main, ["plan", "--json", *A100_535, "flash-attn==2.8.3.post2"])
    notes = json.loads(got.stdout)["notes"]
    assert any(n.startswith("relies on an unverified fact: flash-attn 2.8.3.post2: no matching git tag") for n in notes)
    # 3. --verified-only refuses it with kind unverified, its title and note, and what works instead
    data = _refused(*A100_535, "--verified-only", "flash-attn==2.8.3.post2")
    refusals = data["refusals"]
    assert {r["kind"] for r in refusals} == {"unverified"}, refusals  # type: ignore[union-attr]
    facts = refusals[0]["facts"]  # type: ignore[index]
    assert facts["title"] == "flash-attn" and facts["version"] == "2.8.3.post2" and "no matching git tag" in facts["note"]
    assert any("flash-attn==2.8.3.post1" in t for t in _texts(data)), _texts(data)


@pytest.mark.parametrize(("args", "asked", "build"), [
    (["--gpu", "A100", "--driver", "550", "torch==2.13.0+cpu"], "cpu", "2.13.0+cu126"),
    (["--gpu", "A100", "--driver", "550", "torch==2.13.0+cpu", "xformers"], "cpu", "2.13.0+cu126"),
    (["--gpu", "A100", "--driver", "550", "torch==2.13.0+cu118"], "cu118", "2.13.0+cu126"),
    (["--gpu", "A100", "--driver", "550", "torch==2.13.0+cu130"], "cu130", "2.13.0+cu126"),
    (["--gpu", "B200", "--driver", "580", "torch==2.13.0+cu126"], "cu126", "2.13.0+cu132"),
    (["--cpu", "torch==2.13.0+cu126"], "cu126", "2.13.0+cpu"),
])
def test_a_refused_build_variant_offers_the_release_without_it_and_that_plans(
        args: list[str], asked: str, build: str) -> None:
    """A +variant the target cannot use (+cpu on a GPU, a +cuNNN the release lacks, the driver cannot run, or that
    has no code for the GPU; a CUDA build on a CPU target) is refused with the same release without the variant as
    the first alternative, and re-planning it as printed (the change dropped the variant only) solves with the
    build the alternative names, companions included."""
    data = _refused(*args)
    first = data["alternatives"][0]  # type: ignore[index]
    assert first["change"] == {"target": {}, "request": {"torch_variant": None}}
    assert first["text"].startswith(f"torch==2.13.0 without +{asked}: the plan takes torch {build}"), first
    assert "(ask for torch==2.13.0)" in first["text"]
    assert all(r["alternative"] is not None for r in data["refusals"])  # type: ignore[attr-defined]
    replan = [a.replace(f"+{asked}", "") for a in args]
    result = CliRunner().invoke(main, ["plan", "--json", *replan])
    assert result.exit_code == 0, result.output
    got = {p["name"]: p["version"] for p in json.loads(result.stdout)["packages"]}
    assert got["torch"] == build
    assert ("xformers" in got) == ("xformers" in args)


def test_a_cuda_build_on_a_cpu_target_names_the_next_step() -> None:
    result = CliRunner().invoke(main, ["plan", "--cpu", "torch==2.13.0+cu126"])
    assert result.exit_code == 1
    assert ("  - torch==2.13.0+cu126 is a CUDA build: this target has no GPU, and a CPU target takes a +cpu build "
            "(--gpu NAME plans for a GPU machine)\n") in result.stdout
    assert "no combination of the requested packages fits" not in result.stdout


def test_a_torch_only_unverified_builds_serve_names_the_fact_and_a_verified_build_that_plans() -> None:
    """It said 'no combination of the requested packages fits this target' (kind other): no cause, no next step."""
    args = ["--gpu", "RTX 5090", "--driver", "575.51.03", "--python", "3.12", "--verified-only"]
    data = _refused(*args, "torch==2.7.0")
    [row] = data["refusals"]  # type: ignore[misc]
    assert row["kind"] == "unverified" and "torch 2.7.0+cu128: first release with Blackwell" in row["text"], row
    assert "(without it the plan takes it)" in row["text"]
    assert CliRunner().invoke(main, ["plan", *args[:-1], "torch==2.7.0"]).exit_code == 0  # as the text says
    [alt] = data["alternatives"]  # type: ignore[misc]
    assert alt == row["alternative"] and alt["change"]["request"] == {"torch": "==2.11.0", "torch_variant": "cu128"}
    again = CliRunner().invoke(main, ["plan", "--json", *args, "torch==2.11.0+cu128"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["packages"][0]["version"] == "2.11.0+cu128"


def test_a_companion_no_release_of_which_serves_the_gpu_offers_the_request_without_it() -> None:
    """xformers 0.0.16 does not compile below sm_50: the K80 refusal named no next step."""
    args = ["--gpu", "Tesla K80", "--driver", "470.82.01", "--python", "3.10", "--nvcc", "11.4", "torch==1.12.1"]
    data = _refused(*args, "xformers==0.0.16")
    [alt] = data["alternatives"]  # type: ignore[misc]
    assert alt["text"] == "the rest of the request plans without xformers on Tesla K80 (drop xformers==0.0.16 from " \
                          "the request)", alt
    assert alt["change"] == {"target": {}, "request": {"xformers": None}}
    again = CliRunner().invoke(main, ["plan", "--json", *args])
    assert again.exit_code == 0 and json.loads(again.stdout)["packages"][0]["version"].startswith("1.12.1+"), again.output


@pytest.mark.parametrize(("name", "known"), [("flash-attn", "2.0.0.post1–2.8.3.post2"), ("xformers", "0.0.16–0.0.35")])
def test_a_companion_bound_no_known_release_meets_names_the_releases_and_a_move_that_plans(name: str, known: str) -> None:
    """'xformers==9 matches no xformers release gpustack knows' named no next step."""
    args = ["--gpu", "H100", "--driver", "580.65.06", "--python", "3.12"]
    data = _refused(*args, f"{name}==9")
    [row] = data["refusals"]  # type: ignore[misc]
    assert row["kind"] == "no_release" and row["text"].endswith(
        f"gpustack knows ({known}; `gpustack matrix show {name}` lists them)"), row
    assert CliRunner().invoke(main, ["matrix", "show", name]).exit_code == 0  # the command it names works
    [alt] = data["alternatives"]  # type: ignore[misc]
    assert alt == row["alternative"] and alt["change"]["request"] == {name.replace("-", "_"): ""}, alt
    again = CliRunner().invoke(main, ["plan", "--json", *args, name])
    assert again.exit_code == 0 and name in [p["name"] for p in json.loads(again.stdout)["packages"]], again.output
    if name == "flash-attn":  # where no release would serve (a K80), the reason still names where they are listed
        old = _refused("--gpu", "K80", "--driver", "470.82.01", "--python", "3.10", f"{name}==9")
        assert old["alternatives"] == [] and "`gpustack matrix show" in old["reasons"][0]  # type: ignore[index]


def test_a_gpu_no_torch_wheel_of_the_platform_serves_names_the_platforms_that_do_or_that_none_does() -> None:
    """'no linux_aarch64 torch wheel has sm_75 code (Tesla T4)' named no next step."""
    t4 = ["--gpu", "T4", "--driver", "580.159.04", "--python", "3.12"]
    data = _refused(*t4, "--platform", "linux_aarch64")
    assert data["reasons"] == ["no linux_aarch64 torch wheel has sm_75 code (Tesla T4); linux_x86_64, win_amd64 torch "
                               "wheels have it (--platform linux_x86_64 plans for such a host)"], data
    for platform in ("linux_x86_64", "win_amd64"):  # as it says
        assert CliRunner().invoke(main, ["plan", *t4, "--platform", platform]).exit_code == 0, platform
    k40 = _refused("--gpu", "K40", "--driver", "470.256.02", "--python", "3.9")
    assert k40["reasons"][0].endswith("; no torch wheel gpustack knows has it, for any platform or Python (a torch "  # type: ignore[index]
                                      "built from source for sm_35 is outside what gpustack plans)"), k40
