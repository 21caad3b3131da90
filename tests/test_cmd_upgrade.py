"""check-upgrade reads which torch a locked flash-attn wheel was built for from its file name (packaging's parser)."""

from __future__ import annotations

import pytest

from resolver.cmd_upgrade import _built_for_torch

_GH = "https://github.com/Dao-AILab/flash-attention/releases/download/v2.5.8/"


@pytest.mark.parametrize("url, torch", [
    (_GH + "flash_attn-2.5.8+cu122torch2.3cxx11abiFALSE-cp311-cp311-linux_x86_64.whl", "2.3"),
    (_GH + "flash_attn-2.8.3+cu12torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "2.10"),
    ("https://files.pythonhosted.org/packages/flash_attn-2.5.8.tar.gz", None),  # an sdist: built here, any torch
    ("https://pypi.org/simple/flash-attn/flash_attn-2.5.8-cp311-cp311-linux_x86_64.whl", None),  # no label
    ("https://example.org/not-a-wheel.whl", None),
])
def test_built_for_torch(url: str, torch: str | None) -> None:
    assert _built_for_torch(url) == torch
