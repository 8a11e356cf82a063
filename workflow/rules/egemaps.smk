# egemaps: audio -> 16 kHz mono (PyAV) -> opensmile eGeMAPSv02 LLDs (25 columns, 10 ms hop).
# -> facevox.extract.egemaps.run · tests/test_egemaps.py
rule egemaps:
    input:
        video=video_path,
    output:
        "results/egemaps/{video}.parquet",
    params:
        cfg=stage_json("egemaps"),
    group:
        PER_VIDEO
    log:
        "results/logs/egemaps/{video}.log",
    benchmark:
        "results/benchmarks/egemaps/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox egemaps {input.video:q} {output:q} --params {params.cfg:q} > {log:q} 2>&1"
