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
    # The bounds profiles set (requirements and constraints), the user's own lines not among them.
    bounds = parse_request(["torch<2.2", "xformers"], m, profiles=["audiocraft"]).profile_bounds
    assert {n: str(b) for n, b in bounds} == {"torch": "==2.1.0", "xformers": "<0.0.23"}
    assert {n: str(b) for n, b in d.profile_bounds} == {"flash-attn": ">=2.6.3", "xformers": ">=0.0.29"}


def test_a_line_the_user_wrote_is_requested_even_when_a_profile_constrains_with_the_same_text() -> None:
    # diffusers constrains "xformers>=0.0.29" (and lists it as optional): the user asking for exactly that line
    # asks for xformers, so it is planned (or refused), not dropped as an optional that did not fit.
    d = parse_request(["xformers>=0.0.29"], matrix.load(), profiles=["diffusers"])
    assert d.xformers is not None and str(d.xformers) == ">=0.0.29"
    assert "xformers" not in dict(d.optional)
    assert dict(d.profile_bounds)["xformers"] == d.xformers


def test_an_unknown_profile_is_named_before_a_bad_line() -> None:
    with pytest.raises(BadInput, match="unknown profile 'comfy'"):
        parse_request(["xformers<<1"], matrix.load(), profiles=["comfy"])


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
