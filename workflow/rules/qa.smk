# qa: one quality record per video (face-found rate, gaps, audio, the target person), then results/qa.tsv
# (with identity_overlap.tsv's cross-split pairs: flag same_face_other_subject, column same_face_as).
# -> facevox.extract.qa.run / facevox.extract.qa.collect · tests/test_qa.py
rule qa_video:
    input:
        probe="results/probe/{video}.json",
        landmarks="results/landmarks/{video}.parquet",
        egemaps="results/egemaps/{video}.parquet",
        action_units="results/action_units/{video}.parquet",
    output:
        "results/qa/{video}.json",
    group:
        PER_VIDEO
    priority: 10  # on a rerun's longest chain of jobs: first when ready (benchmarks/bench_snakemake.py)
    log:
        "results/logs/qa_video/{video}.log",
    benchmark:
        "results/benchmarks/qa_video/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox qa-video {wildcards.video} {input.probe:q} {input.landmarks:q} {input.egemaps:q} {output:q} --action-units {input.action_units:q} > {log:q} 2>&1"


rule qa:
    input:
        unpack(qa_overlap_input),
        records=expand("results/qa/{video}.json", video=VIDEOS),
    output:
        "results/qa.tsv",
    params:
        overlap=qa_overlap_option,
    priority: 10  # on a rerun's longest chain of jobs: first when ready (benchmarks/bench_snakemake.py)
    log:
        "results/logs/qa.log",
    benchmark:
        "results/benchmarks/qa.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox qa {output:q} {input.records:q} {params.overlap} > {log:q} 2>&1"
