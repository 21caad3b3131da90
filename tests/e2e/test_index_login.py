"""An index that refuses the plan's pass-through lookup with 401 is named as refusing the credentials (or wanting a
login), as an install's failed step is (``index_lookup.login_advice``, the one wording), never as a package that
does not exist; exit 1 (the index's answer, not a malformed input: README's exit codes), the password masked.
The mirror is ``test_mirror_secrets``' loopback server behind HTTP basic auth."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import TwoIndexes
from resolver.cli import main
from test_mirror_secrets import _Seen, guarded  # noqa: F401  (the basic-auth mirror fixture)

pytestmark = pytest.mark.slow

PLAN = ["plan", "--cpu", "--python", "3.11", "--platform", "linux_x86_64", "torch==2.13.0", "requests"]


@pytest.mark.parametrize(("user", "said"), [
    ("alice:wrongpw@", "refused the credentials in its URL (401): check the user and token"),
    ("", "wants a login (it answered 401): give the credentials in the URL"),
])
def test_a_401_at_plan_time_names_the_credentials_not_the_spelling(
        guarded: tuple[TwoIndexes, _Seen], user: str, said: str) -> None:  # noqa: F811
    idx, _ = guarded
    mirror = idx.pypi_url.replace("http://", f"http://{user}")
    out = CliRunner().invoke(main, PLAN, env={"PIP_INDEX_URL": mirror})
    assert out.exit_code == 1, out.output
    assert sum(said in line for line in out.output.splitlines()) == 1, out.output
    assert "spelling" not in out.output and "wrongpw" not in out.output, out.output
