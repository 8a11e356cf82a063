"""Bad inputs become excluded records (facevox.extract.exclusion, rule inputs, on_bad_input)."""
import contextlib
import io

import pandas as pd
import pytest

from facevox.cli import main
from facevox.contract import ALIGNED_SCHEMA, AU_SCHEMA, EGEMAPS_SCHEMA, FAU_WINDOWS_SCHEMA, LANDMARKS_SCHEMA, QA_COLUMNS
from facevox.errors import ExcludedInput, FacevoxError
from facevox.extract import qa
from facevox.extract.exclusion import INPUTS_COLUMNS, exclusion_of, screen, summary_lines, write_excluded
from facevox.io import read_json, read_table, write_json, write_table
from facevox.media import sniff
from facevox.provenance import provenance
from facevox.report.run_card import excluded_inputs


def run_cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


# --------------------------------------------------------------------------- why a file does not open
def test_sniff_names_a_cut_off_mp4_and_a_text_file(tmp_path, feat_media):
    full = (feat_media / "single_face.mp4").read_bytes()  # index (moov) at the end, as ffmpeg writes it
    moov_at = full.index(b"moov") - 4  # where the media data box ends and the index begins
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full[:50000])
    assert sniff(cut) == (f"cut off: an MP4/MOV file of 50000 bytes whose 'mdat' box needs {moov_at} "
                          "(an interrupted download or copy?)")
    cut.write_bytes(full[:moov_at])  # every box whole, the index missing
    assert sniff(cut) == "cut off: an MP4/MOV file without its index ('moov' box; an interrupted download or copy?)"
    text = tmp_path / "text.mp4"
    text.write_text("not a video, ü\n" * 500)  # 7500 bytes: the 4 KiB read may cut the 'ü' in two
    assert sniff(text) == "the file is text, not media"
    binary = tmp_path / "noise.mp4"
    binary.write_bytes(bytes(range(256)) * 8)
    assert sniff(binary) is None
    assert sniff(feat_media / "single_face.mp4") is None  # a whole file: nothing to say


# --------------------------------------------------------------------------- the stages
def test_every_stage_writes_the_first_reason_and_passes_it_on(tmp_path):
    video = tmp_path / "empty.mp4"
    video.write_bytes(b"")
    reason = {"stage": "landmarks", "path": str(video), "problem": "file is empty (0 bytes)"}
    steps = [("probe", "json", [video, tmp_path / "p.json"]),
             ("egemaps", EGEMAPS_SCHEMA, [video, tmp_path / "e.parquet"]),
             ("landmarks", LANDMARKS_SCHEMA, [video, tmp_path / "l.parquet"]),
             ("align", ALIGNED_SCHEMA, [tmp_path / "l.parquet", tmp_path / "e.parquet", tmp_path / "a.parquet"]),
             ("action-units", AU_SCHEMA, [video, tmp_path / "l.parquet", tmp_path / "u.parquet"]),
             ("fau-windows", FAU_WINDOWS_SCHEMA, [tmp_path / "u.parquet", tmp_path / "w.parquet"])]
    for command, schema, args in steps:
        rc, err = run_cli(command, *args)
        assert rc == 0 and err.startswith(f"facevox: excluded: {video}: file is empty (0 bytes)"), command
        out = args[-1]
        own = command.replace("-", "_") if command in ("probe", "egemaps", "landmarks") else "landmarks"
        assert exclusion_of(out) == {**reason, "stage": own}, command  # align on: landmarks' reason
        if schema != "json":
            assert pq_rows_and_names(out) == (0, schema.names), command
            with pytest.raises(ExcludedInput, match=rf"{out}: excluded by stage {own}: file is empty"):
                read_table(out, schema)
    rc, _ = run_cli("qa-video", "empty", tmp_path / "p.json", tmp_path / "l.parquet", tmp_path / "e.parquet",
                    tmp_path / "q.json", "--action-units", tmp_path / "u.parquet")
    rec = read_json(tmp_path / "q.json")
    assert rc == 0 and set(rec) == set(QA_COLUMNS)
    assert rec["flags"] == "excluded" and rec["excluded_reason"] == "file is empty (0 bytes) (stage probe)"
    assert rec["n_frames"] is None and rec["face_found_rate"] is None  # no made-up zero


def pq_rows_and_names(path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.num_rows, table.schema.names


def test_an_audio_only_probe_is_excluded_but_describes_the_file(tmp_path, speech_wav):
    rc, err = run_cli("probe", speech_wav, tmp_path / "p.json")
    info = read_json(tmp_path / "p.json")
    assert rc == 0 and info["video"] is None and info["audio"]["sample_rate"] == 22050
    assert info["excluded"] == {"stage": "probe", "path": str(speech_wav),
                                "problem": "has no video stream (audio only)"}


# --------------------------------------------------------------------------- the gate
def _records(tmp_path, bad: dict[str, dict]):
    """probe + align records of a, b, c; ``bad``: id -> the reason its probe record gives."""
    paths = []
    for vid in ("a", "b", "c"):
        probe, aligned = tmp_path / f"probe/{vid}.json", tmp_path / f"align/{vid}.parquet"
        if vid in bad:
            write_excluded(probe, "json", bad[vid], "probe")
            write_excluded(aligned, ALIGNED_SCHEMA, bad[vid], "align")
        else:
            write_json({"video": {"n_frames": 3}}, probe)
            write_table(ALIGNED_SCHEMA.empty_table(), aligned, ALIGNED_SCHEMA, provenance("align"))
        paths += [probe, aligned]
    return paths


def _sheet(tmp_path):
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\tsplit\tlabel\n"
                     "a\tv/a.mp4\tsa\ttrain\tdepression\n"
                     "b\tv/b.mp4\tsb\ttrain\tnormal\n"
                     "c\tv/c.mp4\tsc\ttest\tnormal\n")
    return sheet


def test_screen_lists_every_video_and_lets_the_good_ones_through(tmp_path):
    empty = {"stage": "probe", "path": str(tmp_path / "v/b.mp4"), "problem": "file is empty (0 bytes)"}
    records = _records(tmp_path, {"b": empty})
    table = screen(_sheet(tmp_path), records, tmp_path / "inputs.tsv", tmp_path / "included.tsv")
    assert list(table.columns) == INPUTS_COLUMNS
    assert (tmp_path / "inputs.tsv").read_text().splitlines() == [
        "video_id\tstatus\tstage\tproblem\tpath",
        f"a\tincluded\t\t\t{tmp_path}/v/a.mp4",
        f"b\texcluded\tprobe\tfile is empty (0 bytes)\t{tmp_path}/v/b.mp4",
        f"c\tincluded\t\t\t{tmp_path}/v/c.mp4",
    ]
    included = pd.read_csv(tmp_path / "included.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(included["video_id"]) == ["a", "c"] and list(included["split"]) == ["train", "test"]
    assert included["path"].tolist() == [f"{tmp_path}/v/a.mp4", f"{tmp_path}/v/c.mp4"]  # absolute: read from results/
    assert excluded_inputs(tmp_path / "inputs.tsv") == {"b": {k: empty[k] for k in ("stage", "problem", "path")}}
    assert summary_lines(records) == [
        ("facevox: 1 input(s) EXCLUDED, they cannot be read (the run went on without them; listed in "
         "results/inputs.tsv, results/qa.tsv and the report):"),
        f"  b: file is empty (0 bytes) (stage probe): {tmp_path}/v/b.mp4"]
    assert summary_lines(records[:2]) == []  # the run stopped before b's records: nothing to say yet


def test_fail_mode_stops_listing_every_bad_input(tmp_path):
    bad = {"a": {"stage": "probe", "path": "v/a.mp4", "problem": "has no video stream (audio only)"},
           "c": {"stage": "landmarks", "path": "v/c.mp4", "problem": "file is empty (0 bytes)"}}
    with pytest.raises(FacevoxError) as err:
        screen(_sheet(tmp_path), _records(tmp_path, bad), tmp_path / "inputs.tsv", tmp_path / "included.tsv",
               on_bad_input="fail")
    assert str(err.value) == ("2 of 3 input(s) cannot be read (on_bad_input: fail; set on_bad_input: exclude to "
                              "run without them):\n  a: has no video stream (audio only) (stage probe)\n"
                              "  c: file is empty (0 bytes) (stage landmarks)")
    assert not (tmp_path / "included.tsv").exists()  # nothing for shards or training
    # all good: fail mode lets everything through
    screen(_sheet(tmp_path), _records(tmp_path / "ok", {}), tmp_path / "ok.tsv", tmp_path / "inc.tsv", "fail")
    assert len(pd.read_csv(tmp_path / "inc.tsv", sep="\t")) == 3


def test_a_record_of_a_video_not_in_the_sheet_is_an_error(tmp_path):
    stray = tmp_path / "probe/zz.json"
    write_json({"video": {}}, stray)
    with pytest.raises(FacevoxError, match="zz.json is not an output of a video of"):
        screen(_sheet(tmp_path), [stray], tmp_path / "i.tsv", tmp_path / "s.tsv")


# --------------------------------------------------------------------------- qa.tsv
def test_qa_table_lists_the_excluded_video_with_its_reason(tmp_path):
    reason = {"stage": "probe", "path": "v/x.mp4", "problem": "file is empty (0 bytes)"}
    write_json(qa.excluded_record("x", reason), tmp_path / "x.json")
    good = dict.fromkeys(QA_COLUMNS, None) | {"video_id": "a", "n_frames": 3, "face_found_rate": 1.0, "flags": ""}
    write_json(good, tmp_path / "a.json")
    qa.collect([tmp_path / "x.json", tmp_path / "a.json"], tmp_path / "qa.tsv")
    rows = pd.read_csv(tmp_path / "qa.tsv", sep="\t", keep_default_na=False).set_index("video_id")
    assert list(rows.columns) == QA_COLUMNS[1:] and list(rows.index) == ["a", "x"]
    assert rows.loc["x", "flags"] == "excluded" and rows.loc["x", "face_found_rate"] == "NA"
    assert rows.loc["x", "excluded_reason"] == "file is empty (0 bytes) (stage probe)"
    assert rows.loc["a", "excluded_reason"] == "NA"
    write_json({"video": {}}, tmp_path / "ok.json")
    # QA rows are no records
    assert exclusion_of(tmp_path / "ok.json") is None and exclusion_of(tmp_path / "x.json") is None
