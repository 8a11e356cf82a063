"""`facevox extract` (facevox.extract.chain): every stage of one video in one process, one decode
shared by the landmark tracker and the mediapipe AU backend - the same tables as the stages alone."""
import numpy as np
import pytest

from facevox.contract import AU_SCHEMA, LANDMARKS_SCHEMA
from facevox.extract import action_units, au_mediapipe, chain, landmarks
from facevox.io import read_table

pytestmark = pytest.mark.skipif(not au_mediapipe.available(), reason="mediapipe or its bundle is not installed")


def same_table(a, b, schema):
    (da, ma), (db, mb) = read_table(a, schema), read_table(b, schema)
    assert list(da.columns) == list(db.columns) and len(da) == len(db) > 0
    for col in da.columns:
        assert np.array_equal(da[col].to_numpy(), db[col].to_numpy(), equal_nan=True), col
    return ma, mb


def test_shared_decode_writes_the_stages_own_tables(feat_media, tmp_path):
    video = feat_media / "face_noface.mov"  # a face, then none: tracking, losing and the NaN rows
    config = tmp_path / "config.yaml"
    config.write_text("action_units:\n  backend: mediapipe\n")
    paths = chain.run(video, tmp_path / "chain", config)
    assert [k for k in paths] == ["probe", "egemaps", "landmarks", "aligned", "action_units", "fau_windows", "qa"]
    assert all(p.is_file() for p in paths.values())

    alone = tmp_path / "alone"
    landmarks.run(video, alone / "landmarks.parquet")
    action_units.run(video, alone / "landmarks.parquet", alone / "au.parquet", {"backend": "mediapipe"})
    ma, mb = same_table(paths["landmarks"], alone / "landmarks.parquet", LANDMARKS_SCHEMA)
    assert ma["params"] == mb["params"] and ma["face_found_rate"] == mb["face_found_rate"]
    ma, mb = same_table(paths["action_units"], alone / "au.parquet", AU_SCHEMA)
    assert ma["au_backend"] == mb["au_backend"] == "mediapipe" and ma["params"] == mb["params"]


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
