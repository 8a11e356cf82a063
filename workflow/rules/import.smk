# import: features extracted elsewhere, as the same aligned tables (source dvlog / openface).
# One job for the whole release: it checks every file before writing anything. D-Vlog: the
# landmark order per file, the subjects file and its warning -> results/imported/import.json.
# -> facevox.dataset.import_dvlog.import_dvlog / import_openface.import_openface_dir · tests/test_importers.py
if SOURCE == "dvlog":

    rule import_dvlog:
        input:
            os.path.join(config["dvlog_root"], "labels.csv"),
            expand(os.path.join(config["dvlog_root"], "{video}", "{video}_{kind}.npy"), video=VIDEOS,
                   kind=["visual", "acoustic"]),
            [config["dvlog"]["subjects"]] if config["dvlog"]["subjects"] else [],
        output:
            sheet="results/imported/samples.tsv",
            summary="results/imported/import.json",
            aligned=expand("results/align/{video}.parquet", video=VIDEOS),
        params:
            cfg=stage_json("dvlog"),
        log:
            "results/logs/import_dvlog.log",
        benchmark:
            "results/benchmarks/import_dvlog.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            ("python -m facevox import-dvlog {config[dvlog_root]:q} results/align {output.sheet:q} "
             "--params {params.cfg:q} --summary {output.summary:q} > {log:q} 2>&1")

elif SOURCE == "openface":

    rule import_openface:
        input:
            expand(os.path.join(config["openface_dir"], "{name}"),
                   name=sorted(p.name for p in Path(config["openface_dir"]).glob("*.csv"))),
        output:
            sheet="results/imported/samples.tsv",
            aligned=expand("results/align/{video}.parquet", video=VIDEOS),
        params:
            cfg=stage_json("align"),
            rate=config["align"]["rate_hz"],
        log:
            "results/logs/import_openface.log",
        benchmark:
            "results/benchmarks/import_openface.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox import-openface {config[openface_dir]:q} results/align {output.sheet:q} --rate-hz {params.rate} > {log:q} 2>&1"
