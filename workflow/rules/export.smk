# export_dvlog, on demand only (not in `rule all`): `snakemake results/export/dvlog/labels.csv`
# writes the sheet's videos in the D-Vlog layout the public loaders read (labels.csv,
# <id>/<id>_visual.npy, _acoustic.npy at 1 Hz, subjects.csv, export.json).
# -> facevox.dataset.exporters.export_dvlog · tests/test_exporters.py
# D-Vlog rows are seconds: with source videos and align.rate_hz other than 1 the export gets its
# own 1 Hz alignment (align_1hz, same landmarks and eGeMAPS); imported tables are exported as
# they are and must already be 1 Hz (a D-Vlog import is).
EXPORT_1HZ = SOURCE == "videos" and config["align"]["rate_hz"] != 1
EXPORT_ALIGNED = "results/export/aligned_1hz" if EXPORT_1HZ else "results/align"

if EXPORT_1HZ:

    rule align_1hz:
        input:
            landmarks="results/landmarks/{video}.parquet",
            egemaps="results/egemaps/{video}.parquet",
        output:
            "results/export/aligned_1hz/{video}.parquet",
        params:
            cfg=json.dumps({**config["align"], "rate_hz": 1}, sort_keys=True),
        group:
            PER_VIDEO
        log:
            "results/logs/align_1hz/{video}.log",
        benchmark:
            "results/benchmarks/align_1hz/{video}.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox align {input.landmarks:q} {input.egemaps:q} {output:q} --params {params.cfg:q} > {log:q} 2>&1"


rule export_dvlog:
    input:
        sheet=SHEET,
        aligned=expand(os.path.join(EXPORT_ALIGNED, "{video}.parquet"), video=VIDEOS),
    output:
        "results/export/dvlog/labels.csv",
    params:
        cfg=json.dumps({"export_order": config["dvlog"]["export_order"]}),
        aligned=lambda wildcards, input: os.path.dirname(input.aligned[0]) if input.aligned else EXPORT_ALIGNED,
        out=lambda wildcards, output: os.path.dirname(output[0]),
        positive=config["models"]["positive_label"],
    log:
        "results/logs/export_dvlog.log",
    benchmark:
        "results/benchmarks/export_dvlog.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox export-dvlog {input.sheet:q} {params.aligned:q} {params.out:q} "
        "--params {params.cfg:q} --positive-label {params.positive:q} > {log:q} 2>&1"
