# aligned_faces: eyes-level square face crops (JPEG in Parquet) + landmarks in crop coordinates.
# Only in the DAG when aligned_faces.keep_face_images is true (privacy default: features only).
# -> facevox.extract.faces.run · tests/test_aligned_faces.py
rule aligned_faces:
    input:
        video=video_path,
        landmarks="results/landmarks/{video}.parquet",
    output:
        "results/faces/{video}.parquet",
    params:
        cfg=stage_json("aligned_faces"),
    log:
        "results/logs/aligned_faces/{video}.log",
    benchmark:
        "results/benchmarks/aligned_faces/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox aligned-faces {input.video:q} {input.landmarks:q} {output:q} --params {params.cfg:q} > {log:q} 2>&1"
