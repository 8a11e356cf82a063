"""`facevox extract` (facevox.extract.chain): every stage of one video in one process, one decode
shared by the landmark tracker and the mediapipe AU backend - the same tables as the stages alone."""
import shutil
import subprocess

import numpy as np
import pytest

from facevox.contract import AU_SCHEMA, LANDMARKS_SCHEMA
from facevox.extract import action_units, au_mediapipe, au_mediapipe_install, chain, landmarks
from facevox.io import read_table

pytestmark = pytest.mark.skipif(not au_mediapipe_install.available(), reason="mediapipe or its bundle is not installed")
#: What the chain says when MediaPipe must run again on the final target's boxes.
SECOND_PASS = "MediaPipe ran again on the final landmarks table (a second decode)"


def same_table(a, b, schema):
    (da, ma), (db, mb) = read_table(a, schema), read_table(b, schema)
    assert list(da.columns) == list(db.columns) and len(da) == len(db) > 0
    for col in da.columns:
        x, y = da[col].to_numpy(), db[col].to_numpy()
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), col
    return ma, mb


def test_shared_decode_writes_the_stages_own_tables(feat_media, tmp_path, capsys):
    video = feat_media / "face_noface.mov"  # a face, then none: tracking, losing and the NaN rows
    config = tmp_path / "config.yaml"
    config.write_text("action_units:\n  backend: mediapipe\n")
    paths = chain.run(video, tmp_path / "chain", config)
    # One person: the provisional target is the final one on every frame, MediaPipe runs once.
    assert SECOND_PASS not in capsys.readouterr().err
    assert [k for k in paths] == ["probe", "egemaps", "landmarks", "aligned", "action_units", "fau_windows", "qa"]
    assert all(p.is_file() for p in paths.values())

    alone = tmp_path / "alone"
    landmarks.run(video, alone / "landmarks.parquet")
    action_units.run(video, alone / "landmarks.parquet", alone / "au.parquet", {"backend": "mediapipe"})
    ma, mb = same_table(paths["landmarks"], alone / "landmarks.parquet", LANDMARKS_SCHEMA)
    assert ma["params"] == mb["params"] and ma["face_found_rate"] == mb["face_found_rate"]
    ma, mb = same_table(paths["action_units"], alone / "au.parquet", AU_SCHEMA)
    assert ma["au_backend"] == mb["au_backend"] == "mediapipe" and ma["params"] == mb["params"]


@pytest.mark.parametrize(("frames", "max_bytes", "run"), [(10, 32 << 20, 10), (16, 3 * 640 * 360 * 3, 3)])
def test_tracker_and_mediapipe_take_turns_over_runs_of_frames(feat_media, tmp_path, monkeypatch, frames, max_bytes,
                                                               run):
    """The tracker gets a run of frames (at most BATCH_FRAMES, at most BATCH_BYTES of RGB), then
    MediaPipe the same run with the tracker's boxes; the last run is what is left (72 frames of
    640x360: 7 runs of 10 and one of 2, or 24 runs of 3)."""
    calls = []
    track_add, session = landmarks.Track.add, au_mediapipe.FaceLandmarkerAU.session

    def add(self, frame):
        calls.append("track")
        return track_add(self, frame)

    def counted_session(self, *args, **kwargs):
        s = session(self, *args, **kwargs)
        mp_add = s.add
        s.add = lambda frame, box: calls.append("mediapipe") or mp_add(frame, box)
        return s

    monkeypatch.setattr(landmarks.Track, "add", add)
    monkeypatch.setattr(au_mediapipe.FaceLandmarkerAU, "session", counted_session)
    monkeypatch.setattr(chain, "BATCH_FRAMES", frames)
    monkeypatch.setattr(chain, "BATCH_BYTES", max_bytes)
    video = feat_media / "single_face.mp4"  # 72 frames, 640x360
    if run == 10:
        chain_and_stages(video, tmp_path)  # the stages alone (frame by frame): the same tables
    else:
        chain.run(video, tmp_path / "chain", write_config(tmp_path))
    sizes = [run] * (72 // run) + ([72 % run] if 72 % run else [])
    assert calls[:144] == [who for n in sizes for who in ["track"] * n + ["mediapipe"] * n]


def write_config(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("action_units:\n  backend: mediapipe\n")
    return config


def test_other_backends_run_the_stages_one_after_the_other(feat_media, tmp_path):
    video = feat_media / "single_face.mp4"
    config = tmp_path / "config.yaml"
    config.write_text("action_units:\n  backend: landmarks\n")
    paths = chain.run(video, tmp_path / "chain", config)
    alone = tmp_path / "landmarks.parquet"
    landmarks.run(video, alone)
    same_table(paths["landmarks"], alone, LANDMARKS_SCHEMA)
    _, meta = read_table(paths["action_units"], AU_SCHEMA)
    assert meta["au_backend"] == "landmarks"


def chain_and_stages(video, tmp_path):
    """The chain (mediapipe backend) and the landmarks + action_units stages alone on ``video``:
    (chain paths, the stages' landmarks and AU tables), the tables checked identical."""
    config = tmp_path / "config.yaml"
    config.write_text("action_units:\n  backend: mediapipe\n")
    paths = chain.run(video, tmp_path / "chain", config)
    alone = tmp_path / "alone"
    landmarks.run(video, alone / "landmarks.parquet")
    action_units.run(video, alone / "landmarks.parquet", alone / "au.parquet", {"backend": "mediapipe"})
    same_table(paths["landmarks"], alone / "landmarks.parquet", LANDMARKS_SCHEMA)
    ma, mb = same_table(paths["action_units"], alone / "au.parquet", AU_SCHEMA)
    assert ma["params"] == mb["params"]
    assert all(ma[k] == mb[k] for k in ("target_frames", "not_target_frames", "no_target_frames"))
    return paths


def test_a_changed_provisional_target_runs_mediapipe_again(feat_media, tmp_path, capsys, monkeypatch):
    """The provisional target's box the tracker gives MediaPipe differs from the final table's on
    frames 10-19 (here forced: 5 px to the right, and none on 30-34): MediaPipe runs again from the
    final table, and the chain's AU table is the stage's."""
    original = landmarks.Track.add
    seen = []

    def add(self, frame):
        box = original(self, frame)
        i = len(seen)
        seen.append(box)
        if box is not None and 10 <= i < 20:
            return (box[0] + 5, box[1], box[2], box[3])
        return None if 30 <= i < 35 else box

    monkeypatch.setattr(landmarks.Track, "add", add)
    video = feat_media / "single_face.mp4"
    chain_and_stages(video, tmp_path)
    err = capsys.readouterr().err
    assert SECOND_PASS in err and "boxes differ on 15 frames" in err
    assert all(b is not None for b in seen[:72])  # the chain's tracker gave a box on every frame


@pytest.fixture(scope="module")
def man_then_woman(feat_media, tmp_path_factory):
    """A two-person composite (1280x360, 72 frames at 23.976 fps): the man (single_face.mp4) on
    the left on frames 0-35, the woman (WolfgangLanger_Pexels.mp4) on the right from frame 24
    (black panels otherwise): the man is there first, the woman on more frames (48 against 36)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is not installed: run `make system-deps` (Debian package ffmpeg)")
    out = tmp_path_factory.mktemp("chain_two") / "man_then_woman.mp4"
    black = "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable="
    graph = (f"[0]fps=24000/1001,{black}'gte(n,36)'[m];[1]{black}'lt(n,24)'[w];[m][w]hstack")
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i",
                    str(feat_media / "single_face.mp4"), "-i", str(feat_media / "WolfgangLanger_Pexels.mp4"),
                    "-filter_complex", graph, "-frames:v", "72", "-an", "-c:v", "libx264", "-preset", "ultrafast",
                    "-crf", "18", str(out)], check=True, timeout=120)
    return out


def test_two_person_chain_is_the_stages_and_the_au_row_is_the_landmarks_person(man_then_woman, tmp_path, capsys):
    paths = chain_and_stages(man_then_woman, tmp_path)
    err = capsys.readouterr().err
    print("second pass:", SECOND_PASS in err)
    lm, _ = read_table(paths["landmarks"], LANDMARKS_SCHEMA)
    df, meta = read_table(paths["action_units"], AU_SCHEMA)
    # Every AU row with values is on the landmarks' side (pose_Tx < 0: left of the optical axis).
    ok = df["success"].to_numpy()
    lm_right = (lm["box_left"] + lm["box_width"] / 2 > 640).to_numpy()
    assert ok.sum() > 0 and not (ok & ~lm["success"].to_numpy()).any()
    assert ((df.loc[ok, "pose_Tx"] > 0).to_numpy() == lm_right[ok]).all()
    assert meta["target_frames"] == ok.sum() and meta["not_target_frames"] == 0
