# align_features: eGeMAPS onto the landmark frames (native) or both onto a rate_hz grid.
# -> facevox.align.run · tests/test_align.py
rule align_features:
    input:
        landmarks="results/landmarks/{video}.parquet",
        egemaps="results/egemaps/{video}.parquet",
    output:
        "results/aligned/{video}.parquet",
    params:
        cfg=stage_json("align"),
    log:
        "results/logs/align_features/{video}.log",
    benchmark:
        "results/benchmarks/align_features/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox align {input.landmarks:q} {input.egemaps:q} {output:q} --params {params.cfg:q} > {log:q} 2>&1"
