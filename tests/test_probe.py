"""Stage probe (facevox.extract.probe) on real and made-up media."""
import json

import pytest

from facevox.errors import InputError
from facevox.extract import probe


def test_wolfgang_facts(wolfgang):
    info = probe.probe(wolfgang)
    v, a = info["video"], info["audio"]
    assert info["container"].startswith("mov,mp4")
    assert v["codec"] == "h264" and (v["width"], v["height"]) == (640, 360)
    assert v["avg_fps"] == pytest.approx(24000 / 1001)
    assert v["n_frames"] == 472 and not v["variable_frame_rate"]
    assert v["frame_interval_s"]["median"] == pytest.approx(1001 / 24000)
    assert v["duration_s"] == pytest.approx(19.685, abs=1e-3)
    assert v["rotation"] == 0
    assert (a["codec"], a["sample_rate"], a["channels"]) == ("aac", 48000, 2)
    assert len(info["sha256"]) == 64 and info["size_bytes"] == wolfgang.stat().st_size


def test_variable_frame_rate_is_detected(feat_media):
    v = probe.probe(feat_media / "noface_face.mov")["video"]
    assert v["codec"] == "hevc" and v["variable_frame_rate"]
    assert v["frame_interval_s"]["min"] < 0.02 < v["frame_interval_s"]["max"]


def test_no_audio_stream(video_only):
    info = probe.probe(video_only)
    assert info["audio"] is None and info["video"]["n_frames"] == 48


def test_rotation_metadata(rotated_video):
    v = probe.probe(rotated_video)["video"]
    assert v["rotation"] == 90
    assert (v["coded_width"], v["coded_height"]) == (360, 640)
    assert (v["width"], v["height"]) == (640, 360)  # as displayed


def test_run_writes_json_with_provenance(wolfgang, tmp_path):
    out = tmp_path / "p.json"
    probe.run(wolfgang, out)
    data = json.loads(out.read_text())
    assert data["provenance"]["stage"] == "probe"
    assert "dlib-bin" in data["provenance"]["tools"]
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temp file


@pytest.mark.parametrize("content, problem", [
    (b"", "empty (0 bytes)"),
    (b"this is a text file, not a video\n" * 20, "not a readable media file"),
])
def test_bad_files_give_a_clear_error(tmp_path, content, problem):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(content)
    with pytest.raises(InputError) as err:
        probe.probe(bad)
    assert str(bad) in str(err.value) and problem in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        probe.probe(tmp_path / "nope.mp4")


def test_outputs_get_normal_permissions(wolfgang, tmp_path):
    """Atomic writes go through mkstemp (0600); the finished file must not stay private."""
    import os

    from facevox.io import FILE_MODE

    out = tmp_path / "p.json"
    probe.run(wolfgang, out)
    assert os.stat(out).st_mode & 0o777 == FILE_MODE
