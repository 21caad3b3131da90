from __future__ import annotations

import pytest

from resolver import matrix
from resolver.errors import BadInput
from resolver.request import parse_request


def test_split_into_solved_packages_and_others() -> None:
    r = parse_request(["torch==1.12.1+cu113", "xformers<0.0.23", "numpy<2", "Flash_Attn>=2.6"], matrix.load())
    assert str(r.torch) == "==1.12.1" and r.torch_variant == "cu113"
    assert str(r.xformers) == "<0.0.23"
    assert r.flash_attn is not None and str(r.flash_attn) == ">=2.6"
    assert r.others == ("numpy<2",)


def test_profiles_add_requirements_constraints_and_needs() -> None:
    m = matrix.load()
    a = parse_request([], m, profiles=["audiocraft"])
    assert str(a.torch) == "==2.1.0" and str(a.xformers) == "<0.0.23"
    f = parse_request([], m, profiles=["fairseq"])
    assert f.xformers is not None and "xformers.components" in f.needs
    d = parse_request(["flash-attn"], m, profiles=["diffusers"])
    assert d.flash_attn is not None and str(d.flash_attn) == ">=2.6.3"
    assert d.xformers is None  # a constraint never adds a package


def test_bad_requirement_is_one_line() -> None:
    with pytest.raises(BadInput) as info:
        parse_request(["xformers<<1"], matrix.load())
    assert "\n" not in str(info.value) and "'xformers<<1'" in str(info.value)


def test_unknown_profile() -> None:
    with pytest.raises(BadInput, match="unknown profile 'comfy'; known profiles: audiocraft, fairseq, diffusers"):
        parse_request([], matrix.load(), profiles=["comfy"])


def test_conflicting_builds() -> None:
    with pytest.raises(BadInput, match="conflicting torch builds"):
        parse_request(["torch==2.1.0+cu118", "torch==2.1.0+cu121"], matrix.load())
