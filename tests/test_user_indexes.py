"""The user's own extra indexes, as read from the environment (``installers.user_indexes``), and which steps keep
them out (``installers.installs_planned``); tests/e2e/test_user_extra_index.py runs pip and uv with them."""

from __future__ import annotations

from resolver.installers import Installer, installs_planned, user_index_note, user_indexes
from resolver.models import PackageChoice, Plan, Stack, Step, Target


def test_every_variable_is_read_once_in_order() -> None:
    env = {"PIP_EXTRA_INDEX_URL": "https://a.example/simple  https://b.example/simple",
           "UV_EXTRA_INDEX_URL": "https://b.example/simple", "UV_INDEX": "internal=https://c.example/simple?x=1"}
    assert user_indexes(env) == [("PIP_EXTRA_INDEX_URL", "https://a.example/simple"),
                                 ("PIP_EXTRA_INDEX_URL", "https://b.example/simple"),
                                 ("UV_INDEX", "https://c.example/simple?x=1")]
    assert user_index_note({}) is None
    note = user_index_note({"UV_INDEX": "https://c.example/simple"})
    assert note is not None and "https://c.example/simple ($UV_INDEX) is in use" in note and "\n" not in note


def test_only_pass_through_steps_from_pypi_keep_the_users_indexes() -> None:
    torch_idx = "https://download.pytorch.org/whl/cu121"
    stack = Stack(Target(gpus=(), python="3.11", platform="linux_x86_64"),
                  (PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=torch_idx),
                   PackageChoice("flash_attn", "2.5.0", "wheel", url="https://github.example/f.whl")),
                  ("numpy==1.26.4", "torchvision"))
    steps = (Step("install", "torch", "torch==2.1.0+cu121", index_url=torch_idx),
             Step("install", "numpy", "numpy==1.26.4", index_url="https://mirror.example/simple"),
             Step("install", "torchvision", "torchvision", index_url=torch_idx),
             Step("install", "flash-attn", "flash-attn==2.5.0", url="https://github.example/f.whl"))
    plan = Plan(stack, steps)
    assert [installs_planned(s, plan) for s in steps] == [True, False, True, True]
    pip, uv = Installer("pip", "python", pip=["python", "-m", "pip"]), Installer("uv", "python")
    assert pip.env_for(steps[0], plan)["PIP_EXTRA_INDEX_URL"] == " " and "PIP_EXTRA_INDEX_URL" not in pip.env_for(steps[1], plan)
    assert uv.env_for(steps[2], plan)["UV_EXTRA_INDEX_URL"] == "" and "UV_INDEX" not in uv.env_for(steps[1], plan)
