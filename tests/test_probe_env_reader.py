"""``probe_env`` finds installed distributions without importing ``importlib.metadata``; these tests hold its answer
side by side with the library's, on real environments and on the metadata layouts the library reads.

Each case compares name -> (version, metadata folder, ``direct_url.json``) of the first distribution of each name,
as ``probe_env._distributions`` yields it, with what ``importlib.metadata`` itself finds
(``probe_env._library_distributions``, the reader it falls back to).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver._child import probe_env
from resolver.target import PROBE_SCRIPT


def _fast(search: list[str] | None) -> dict[str, tuple[str, str, str | None]]:
    return {k: (v, folder, read("direct_url.json")) for k, v, folder, read in probe_env._distributions(search)}


def _library(search: list[str] | None) -> dict[str, tuple[str, str, str | None]]:
    return {k: (v, folder, read("direct_url.json")) for k, v, folder, read in probe_env._library_distributions(search)}


def _dist_info(root: Path, folder: str, text: str | bytes, file: str = "METADATA", direct_url: str = "") -> Path:
    path = root / folder
    path.mkdir(parents=True)
    (path / file).write_bytes(text.encode() if isinstance(text, str) else text)
    if direct_url:
        (path / "direct_url.json").write_text(direct_url)
    return path


def test_this_environment_is_read_as_the_library_reads_it() -> None:
    """The test run's own sys.path: every distribution of gpustack's venv and the interpreter's, with the
    editable install's finder and pytest's import hook on ``sys.meta_path``."""
    assert not probe_env._library_needed() and probe_env._metadata_folders(sys.path) is not None  # read by hand
    fast = _fast(None)
    assert len(fast) > 20 and "packaging" in fast and "click" in fast
    assert fast == _library(None)
    assert fast["packaging"][0] == metadata.version("packaging")


def test_every_metadata_layout_the_library_reads(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _dist_info(a, "foo-1.0.dist-info", "Metadata-Version: 2.1\nName: Foo\nVersion: 1.0\n\nName: not-this\n"
               "Version: 9\n", direct_url=json.dumps({"url": "file:///src/foo", "dir_info": {"editable": True}}))
    (a / "bar.egg-info").write_text("Metadata-Version: 1.1\nName: bar\nVersion: 2.0\n")  # an egg-info file
    _dist_info(a, "baz-3.0.egg-info", "Metadata-Version: 1.1\nName: baz\nVersion: 3.0\n", file="PKG-INFO")
    qux = _dist_info(a, "qux-1.0.dist-info", "")  # empty METADATA: PKG-INFO is read instead
    (qux / "PKG-INFO").write_text("Name: qux\nVersion: 1.0\n")
    _dist_info(a, "Case_Mix-0.1.dist-info", "metadata-version: 2.1\nNAME: Case.Mix\nversion:  0.1  \r\n")
    _dist_info(a, "Folded-1.dist-info", "Name: folded\nSummary: one\n  two\nVersion: 1\n")
    _dist_info(a, "first-1.dist-info", "Name: first\nName: second\nVersion: 1\nVersion: 2\n")
    _dist_info(a, "~orch-1.0.dist-info", "Name: torch\nVersion: 1.0\n")  # a killed pip's stash
    _dist_info(a, "noversion-1.dist-info", "Name: noversion\n")
    _dist_info(a, "empty-1.dist-info", "Name: empty\nVersion: 1\n", file="RECORD")  # no metadata file at all
    (a / "not-metadata.txt").write_text("Name: x\nVersion: 1\n")
    _dist_info(b, "foo-2.0.dist-info", "Name: foo\nVersion: 2.0\n")  # shadowed by a's
    _dist_info(b, "later-1.dist-info", "Name: later\nVersion: 1\n")
    egg = tmp_path / "c" / "thing-1.0-py3.11.egg"
    _dist_info(egg, "EGG-INFO", "Name: thing\nVersion: 1.0\n", file="PKG-INFO")
    search = [str(a), str(tmp_path / "missing"), str(b), str(egg)]

    fast = _fast(search)
    assert fast == _library(search)
    assert {k: v[0] for k, v in fast.items()} == {
        "foo": "1.0", "bar": "2.0", "baz": "3.0", "qux": "1.0", "case-mix": "0.1  ", "folded": "1", "first": "1",
        "later": "1", "thing": "1.0"}
    assert json.loads(fast["foo"][2] or "")["dir_info"] == {"editable": True}
    assert probe_env.installed_dists(search=search)["foo"] == ["1.0", "file:///src/foo", True]


def test_metadata_that_is_not_utf8_is_still_read(tmp_path: Path) -> None:
    """A description in another encoding: importlib.metadata raises UnicodeDecodeError on it (which failed the
    whole reading); the header is read all the same."""
    _dist_info(tmp_path, "binary-1.dist-info", b"Name: binary\nVersion: 1\n\n\xff\xfe not utf-8\n")
    with pytest.raises(UnicodeDecodeError):
        _library([str(tmp_path)])
    assert _fast([str(tmp_path)]) == {"binary": ("1", str(tmp_path / "binary-1.dist-info"), None)}


def test_a_long_header_and_a_long_description(tmp_path: Path) -> None:
    """The header is read to its end however long (here 40 KB, Version last), and the description after it not at
    all; what is found is what the library finds."""
    classifiers = "".join(f"Classifier: Topic :: Thing {i}\n" for i in range(1500))
    _dist_info(tmp_path, "long-1.dist-info", f"Metadata-Version: 2.1\nName: long\n{classifiers}Version: 7\n\n"
               + "Name: not-this\n" * 10000)
    assert _fast([str(tmp_path)]) == _library([str(tmp_path)])
    assert _fast([str(tmp_path)])["long"][0] == "7"


def test_a_zip_on_the_path_is_read_by_the_library(tmp_path: Path) -> None:
    """Only importlib.metadata reads inside a zip (an old zipped egg): the reading hands over to it."""
    archive = tmp_path / "zipped.egg"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\n")
    plain = tmp_path / "plain"
    _dist_info(plain, "plain-1.dist-info", "Name: plain\nVersion: 1\n")
    search = [str(plain), str(archive)]
    assert probe_env._metadata_folders(search) is None
    found = _fast(search)
    assert {k: v[0] for k, v in found.items()} == {"plain": "1", "zipped": "1.0"}


def test_the_child_reports_what_the_library_finds() -> None:
    """The ``installed`` reading, run as gpustack runs it (a child of the interpreter), against importlib.metadata
    run in a child of the same interpreter."""
    out = subprocess.run([sys.executable, str(PROBE_SCRIPT), "--mode", "installed"], capture_output=True,
                         text=True, check=True).stdout
    reading = json.loads(out.strip().splitlines()[-1])
    lib = subprocess.run([sys.executable, "-c", (
        "import json, re, os, sys\nfrom importlib import metadata\nseen = {}\n"
        f"sys.path[0] = {str(PROBE_SCRIPT.parent)!r}  # as for the script: its folder, not the working folder\n"
        "for d in metadata.distributions():\n"
        "    if os.path.basename(str(d._path)).startswith('~'): continue\n"
        "    m = d.metadata\n    n, v = m['Name'], m['Version']\n"
        "    if n and v: seen.setdefault(re.sub(r'[-_.]+', '-', n).lower(), [v, str(d._path)])\n"
        "print(json.dumps(seen))")], capture_output=True, text=True, check=True).stdout
    expected = json.loads(lib)
    assert {k: v[0] for k, v in reading["dists"].items()} == {k: v[0] for k, v in expected.items()}
    assert reading["dist_paths"] == {k: v[1] for k, v in expected.items()}


@pytest.mark.parametrize("mode", ["installed", "light"])
def test_a_reading_imports_no_metadata_library(mode: str) -> None:
    """What the reader is for: ``installed`` and ``light`` readings do not import importlib.metadata or email."""
    code = ("import runpy, sys\nsys.argv = [%r, '--mode', %r]\n"
            "try:\n    runpy.run_path(%r, run_name='__main__')\nfinally:\n"
            "    print('LOADED', sorted(m for m in sys.modules if m.startswith(('importlib.metadata', 'email'))),"
            " file=sys.stderr)") % (str(PROBE_SCRIPT), mode, str(PROBE_SCRIPT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED []" in done.stderr, done.stderr[-500:]


# Header lines as metadata files hold them, and as they go wrong: any case of the field names, blanks around the
# colon or the value, folded lines, lines with no colon, the empty line before the body and a body that repeats the
# fields.
_FIELD = st.sampled_from(["Name", "name", "NAME", "Version", "version", "VERSION", "Summary", "Metadata-Version",
                          "Requires-Dist", "Name ", " Name", "X-Name", "From", ""])
_VALUE = st.text(alphabet=st.sampled_from(list("abz019._-+ \t:\x0c\x1c\u2028")), max_size=12)
_LINE = st.one_of(
    st.tuples(_FIELD, st.sampled_from([":", ": ", ":\t", " :"]), _VALUE).map("".join),
    _VALUE.map(lambda v: " " + v),  # folded
    _VALUE.map(lambda v: "From " + v),  # an mbox envelope line
    st.just(""),  # the empty line before the body
    _VALUE,  # no colon at all
)


@settings(max_examples=int(os.environ.get('GPUSTACK_PROPERTY_EXAMPLES', '300')), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.tuples(st.sampled_from(["METADATA", "PKG-INFO"]), st.lists(_LINE, max_size=8)),
                      min_size=1, max_size=2, unique_by=lambda f: f[0]),
       crlf=st.booleans())
def test_any_header_is_read_as_the_library_reads_it(tmp_path: Path, files: list[tuple[str, list[str]]],
                                                     crlf: bool) -> None:
    """Random metadata headers, the email parser (through importlib.metadata) as the oracle."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example (hypothesis reuses tmp_path)
    info = root / "pkg-1.dist-info"
    info.mkdir(parents=True)
    end = "\r\n" if crlf else "\n"
    for name, lines in files:
        (info / name).write_bytes("".join(line + end for line in lines).encode())
    assert _fast([str(root)]) == _library([str(root)])


_PROJECT = st.sampled_from(["foo", "Foo", "foo_bar", "Foo.Bar", "bar", "~oo", "torch"])
_FOLDER = st.tuples(_PROJECT, st.sampled_from(["-1.0", "-2.0", "", "-1.0-py3.11"]),
                    st.sampled_from([".dist-info", ".egg-info", ".DIST-INFO"]), st.booleans(),
                    st.sampled_from(["foo", "Foo-Bar", "bar", "torch", "foo.bar"]), st.sampled_from(["1", "2", "3"]))


@settings(max_examples=int(os.environ.get('GPUSTACK_PROPERTY_EXAMPLES', '300')), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.lists(_FOLDER, max_size=6), min_size=1, max_size=3))
def test_any_layout_is_found_as_the_library_finds_it(tmp_path: Path, entries: list[list[tuple]]) -> None:
    """Random site folders: metadata folders whose own names agree or disagree with the ``Name`` inside, the same
    project twice in a folder or in two, egg-info files, a killed pip's ``~`` stash; importlib.metadata as the
    oracle of which one of each name is found first."""
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    search = []
    for i, folders in enumerate(entries):
        root = base / f"site{i}"
        root.mkdir()
        search.append(str(root))
        for project, version, suffix, as_file, name, meta_version in folders:
            path = root / f"{project}{version}{suffix}"
            if path.exists():
                continue
            text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {meta_version}\n"
            if as_file and suffix == ".egg-info":
                path.write_text(text)
            else:
                path.mkdir()
                (path / ("PKG-INFO" if suffix == ".egg-info" else "METADATA")).write_text(text)
    assert _fast(search) == _library(search)


# --- Requires-Dist, read from METADATA's headers (dist_requires) beside importlib.metadata's answer ----------------

def _site_dist_infos() -> list[Path]:
    import site
    import sysconfig

    folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    return sorted(p for f in folders if os.path.isdir(f) for p in Path(f).glob("*.dist-info"))


def test_requires_match_importlib_metadata_on_this_interpreters_distributions() -> None:
    infos = _site_dist_infos()
    assert len(infos) > 20  # click, rich, packaging, pytest ... and what they need
    differ = {p.name: (probe_env.dist_requires(str(p)), list(metadata.PathDistribution(p).requires or []))
              for p in infos if probe_env.dist_requires(str(p)) != list(metadata.PathDistribution(p).requires or [])}
    assert differ == {}
    assert any(probe_env.dist_requires(str(p)) for p in infos)


@pytest.mark.parametrize("headers", [
    "Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Dist: b>=1\nRequires-Dist: c; extra == 'x'\n\nbody\n"
    "Requires-Dist: not-a-header\n",
    # a folded License whose continuation holds only spaces, then more headers (traitlets 5.15.0's METADATA)
    "Metadata-Version: 2.4\nName: a\nVersion: 1\nLicense: BSD\n        \n        more\nRequires-Dist: b\n\n",
    "Metadata-Version: 2.1\nName: a\nVersion: 1\nSummary: \xfc\n",
    "Metadata-Version: 2.1\r\nName: a\r\nVersion: 1\r\nRequires-Dist: b\r\n (>=2)\r\n\r\nbody\r\n",  # folded, CRLF
    "Metadata-Version: 2.1\nName: a\nVersion: 1\nrequires-dist:  b ; python_version < '3.12' \n",  # no body
    "From x\nMetadata-Version: 2.1\nName: a\nRequires-Dist: b\n: no name\nRequires-Dist: c\nbody line\n",
])
def test_requires_match_importlib_metadata_on_edge_cases(headers: str, tmp_path: Path) -> None:
    info = tmp_path / "a-1.dist-info"
    info.mkdir()
    (info / "METADATA").write_bytes(headers.encode())
    assert probe_env.dist_requires(str(info)) == list(metadata.PathDistribution(info).requires or [])
