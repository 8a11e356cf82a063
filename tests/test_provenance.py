"""facevox.provenance: the tool versions every table records, read from the dist-info
directories as importlib.metadata reads them."""
import sys
from importlib import metadata

from facevox import provenance


def test_tool_versions_are_importlib_metadatas():
    provenance.tool_versions.cache_clear()
    versions = provenance.tool_versions()
    for dist in provenance.TOOLS:
        assert versions[dist] == metadata.version(dist), dist
    assert versions["ffmpeg(libavcodec)"].count(".") == 2


def test_first_on_sys_path_wins_and_missing_is_said(tmp_path, monkeypatch):
    """A dist-info earlier on sys.path shadows the installed one (as for importlib.metadata);
    a name with no distribution is recorded as "not installed"."""
    fake = tmp_path / "Dlib_Bin-99.0.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: dlib-bin\nVersion: 99.0rc1\n\nbody Version: 1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.setattr(provenance, "TOOLS", ("dlib-bin", "numpy", "no-such-distribution-facevox"))
    provenance.tool_versions.cache_clear()
    try:
        versions = provenance.tool_versions()
        assert versions["dlib-bin"] == metadata.version("dlib-bin") == "99.0rc1"
        assert versions["numpy"] == metadata.version("numpy")
        assert versions["no-such-distribution-facevox"] == "not installed"
    finally:
        provenance.tool_versions.cache_clear()
