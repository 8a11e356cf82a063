# landmarks: dlib HOG face (best one) + 68-point shape predictor per frame, detect-then-track.
# -> facevox.extract.landmarks.run · tests/test_landmarks.py
rule landmarks:
    input:
        video=video_path,
    output:
        "results/landmarks/{video}.parquet",
    params:
        cfg=stage_json("landmarks"),
    threads: config["landmarks"]["threads"]
    group:
        PER_VIDEO
    log:
        "results/logs/landmarks/{video}.log",
    benchmark:
        "results/benchmarks/landmarks/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox landmarks {input.video:q} {output:q} --params {params.cfg:q} > {log:q} 2>&1"
