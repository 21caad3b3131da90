"""check-upgrade reads which torch a locked flash-attn wheel was built for from its file name, by the layout of the
matrix's ``wheel_url`` template (flash_attn.toml)."""

from __future__ import annotations

import pytest

from resolver.cmd_upgrade import _built_for_torch, _wheel_name_pattern
from resolver.matrix import load

_GH = "https://github.com/Dao-AILab/flash-attention/releases/download/v2.5.8/"


@pytest.mark.parametrize("url, torch", [
    (_GH + "flash_attn-2.5.8+cu122torch2.3cxx11abiFALSE-cp311-cp311-linux_x86_64.whl", "2.3"),
    (_GH + "flash_attn-2.8.3+cu12torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "2.10"),
    ("https://files.pythonhosted.org/packages/flash_attn-2.5.8.tar.gz", None),  # an sdist: built here, any torch
    ("https://pypi.org/simple/flash-attn/flash_attn-2.5.8-cp311-cp311-linux_x86_64.whl", None),  # no label
    ("https://example.org/not-a-wheel.whl", None),
    (_GH + "flash_attn-2.6.3%2Bcu123torch2.4cxx11abiTRUE-cp310-cp310-linux_x86_64.whl", "2.4"),  # quoted '+'
])
def test_built_for_torch(url: str, torch: str | None) -> None:
    assert _built_for_torch(url, _wheel_name_pattern(load().facts.flash_wheel_url)) == torch


def test_built_for_torch_reads_what_compat_writes() -> None:
    from packaging.version import Version

    from resolver import compat

    m = load()
    wheel_name = _wheel_name_pattern(m.facts.flash_wheel_url)
    for f in m.flash_attn:
        for torch in ("2.4.0", "2.10.0"):
            url = compat.flash_wheel_url(f, Version(torch), Version("12.4"), True, "3.11", "linux_x86_64", m)
            assert _built_for_torch(url, wheel_name) == torch.rsplit(".", 1)[0], url
