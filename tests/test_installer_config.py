"""Which configuration file's index pip and uv would use (``installer_config``), as ``pipeline.pypi_index`` reads it
after the command line and the environment variables: precedence within and between files (pip: a later file and
``[install]`` win; uv: ``UV_CONFIG_FILE`` alone, ``[pip]`` over the top level). The real-installer behaviour is
checked in tests/e2e/test_config_mirror.py."""

from __future__ import annotations

from pathlib import Path

from resolver.installer_config import configured_index
from resolver.pipeline import pypi_index

OFF = {"PIP_CONFIG_FILE": "/dev/null", "UV_NO_CONFIG": "1"}


def test_pip_conf_install_section_wins_and_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = http://g.example/simple\n[install]\nindex_url = http://i.example/simple\n")
    env = {"PIP_CONFIG_FILE": str(conf), "UV_NO_CONFIG": "1", "HOME": str(tmp_path)}
    assert configured_index(env) == (f"index-url in {conf}", "http://i.example/simple")
    # the environment's variable and the option rank above every file, as in pip
    assert pypi_index(None, {**env, "PIP_INDEX_URL": "http://v.example/simple"}) == ("PIP_INDEX_URL",
                                                                                      "http://v.example/simple")
    assert pypi_index("http://o.example/simple", env) == ("--index-url", "http://o.example/simple")


def test_dev_null_and_no_config_read_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "uv.toml"
    conf.write_text('index-url = "http://u.example/simple"\n')
    assert configured_index(OFF) is None and pypi_index(None, OFF) is None
    assert configured_index({**OFF, "UV_CONFIG_FILE": str(conf)}) is None  # UV_NO_CONFIG wins, as in uv


def test_uv_toml_pip_section_over_top_level_and_default_index(tmp_path: Path) -> None:
    conf = tmp_path / "uv.toml"
    conf.write_text('index-url = "http://top.example/simple"\n[pip]\nindex-url = "http://pip.example/simple"\n')
    env = {"PIP_CONFIG_FILE": "/dev/null", "UV_CONFIG_FILE": str(conf)}
    assert configured_index(env) == (f"index-url in {conf}", "http://pip.example/simple")
    conf.write_text('[[index]]\nurl = "http://extra.example/simple"\n\n[[index]]\nurl = "http://d.example/simple"\n'
                    'default = true\n')
    assert configured_index(env) == (f"index-url in {conf}", "http://d.example/simple")
    conf.write_text('[[index]]\nurl = "http://extra.example/simple"\n')  # an extra index is not the mirror
    assert configured_index(env) is None


def test_an_unreadable_file_is_left_to_the_installer(tmp_path: Path) -> None:
    conf = tmp_path / "uv.toml"
    conf.write_text("index-url = [unclosed\n")
    assert configured_index({"PIP_CONFIG_FILE": "/dev/null", "UV_CONFIG_FILE": str(conf)}) is None


def test_find_links_keeps_existing_local_folders_once(tmp_path: Path) -> None:
    from resolver.installer_config import configured_find_links

    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = file://{tmp_path}\n    https://example.org/wheels/\n")
    env = {"PIP_CONFIG_FILE": str(conf), "UV_NO_CONFIG": "1",
           "PIP_FIND_LINKS": f"{tmp_path} {tmp_path / 'missing'}"}
    assert configured_find_links(env) == [("$PIP_FIND_LINKS", str(tmp_path))]
    assert configured_find_links({**env, "PIP_FIND_LINKS": ""}) == [(f"find-links in {conf}", str(tmp_path))]
    assert configured_find_links(OFF) == []
    other = tmp_path / "other"
    other.mkdir()
    assert configured_find_links({**OFF, "UV_FIND_LINKS": f"{tmp_path},{other}"}) == [  # uv: comma-separated
        ("$UV_FIND_LINKS", str(tmp_path)), ("$UV_FIND_LINKS", str(other))]
