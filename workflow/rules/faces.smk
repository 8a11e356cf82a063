# faces: eyes-level square face crops (JPEG in Parquet) + landmarks in crop coordinates.
# Only in the DAG when faces.keep_face_images is true (privacy default: features only).
# -> facevox.extract.faces.run · tests/test_faces.py
rule faces:
    input:
        video=video_path,
        landmarks="results/landmarks/{video}.parquet",
    output:
        "results/faces/{video}.parquet",
    params:
        cfg=stage_json("faces"),
    group:
        PER_VIDEO
    log:
        "results/logs/faces/{video}.log",
    benchmark:
        "results/benchmarks/faces/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox faces {input.video:q} {input.landmarks:q} {output:q} --params {params.cfg:q} > {log:q} 2>&1"
