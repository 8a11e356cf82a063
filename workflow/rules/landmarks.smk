# landmarks: every face tracked (dlib HOG detector + 68-point shape predictor, detect-then-track), each
# face's person known (dlib face descriptors), the target person's landmarks kept (config target).
# -> facevox.extract.landmarks.run · tests/test_landmarks.py
rule landmarks:
    input:
        unpack(landmarks_inputs),
    output:
        "results/landmarks/{video}.parquet",
    params:
        cfg=stage_json("landmarks"),
        target=stage_json("target"),
        reference=reference_option,
    threads: config["landmarks"]["threads"]
    group:
        PER_VIDEO
    priority: 10  # on a rerun's longest chain of jobs: first when ready (benchmarks/bench_snakemake.py)
    log:
        "results/logs/landmarks/{video}.log",
    benchmark:
        "results/benchmarks/landmarks/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox landmarks {input.video:q} {output:q} --params {params.cfg:q} --target {params.target:q}"
        " {params.reference} > {log:q} 2>&1"
