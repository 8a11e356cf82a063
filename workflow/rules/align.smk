# align: eGeMAPS onto the landmark frames (native) or both onto a rate_hz grid.
# -> facevox.extract.align.run · tests/test_align.py
# With `source: aligned` the sheet's paths are already aligned tables (facevox import-dvlog /
# import-openface): they are checked against the contract and taken as they are.
# -> facevox.dataset.importers.use_aligned · tests/test_workflow.py (its source: aligned runs)
if SOURCE == "aligned":

    rule use_aligned:
        input:
            video_path,
        output:
            "results/align/{video}.parquet",
        log:
            "results/logs/use_aligned/{video}.log",
        benchmark:
            "results/benchmarks/use_aligned/{video}.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox use-aligned {input:q} {output:q} > {log:q} 2>&1"

elif SOURCE == "videos":

    rule align:
        input:
            landmarks="results/landmarks/{video}.parquet",
            egemaps="results/egemaps/{video}.parquet",
        output:
            "results/align/{video}.parquet",
        params:
            cfg=stage_json("align"),
        group:
            PER_VIDEO
        log:
            "results/logs/align/{video}.log",
        benchmark:
            "results/benchmarks/align/{video}.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox align {input.landmarks:q} {input.egemaps:q} {output:q} --params {params.cfg:q} > {log:q} 2>&1"
