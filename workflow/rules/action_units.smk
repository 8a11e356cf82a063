# action_units: per-frame intensities of the 17 AVEC/OpenFace AUs (and OpenFace's presence), head pose, gaze
# (backend: pyfeat, mediapipe, openface_models, openface, landmarks, auto),
# of the landmarks table's target person (mediapipe: shown only the target's region, checked per frame; openface: rows of another face are NaN).
# Backends, one module each: facevox.extract.au_pyfeat, au_mediapipe (+ au_mediapipe_install, au_mediapipe_geometry),
# au_openface_pipeline (openface_models: + au_openface_models, au_openface_align, fhog, pdm_fit), au_openface,
# au_geometric (landmarks).
# -> facevox.extract.action_units.run · tests/test_action_units.py
rule action_units:
    input:
        unpack(au_inputs),
    output:
        "results/action_units/{video}.parquet",
    params:
        cfg=stage_json("action_units"),
        backend=au_backend,  # auto resolved here: fetching py-feat's weights makes these jobs stale
        openface=openface_option,
        contract=schema_tag(AU_SCHEMA),  # the table's columns: a table of an older contract is stale
    group:
        PER_VIDEO
    priority: 10  # on a rerun's longest chain of jobs: first when ready (benchmarks/bench_snakemake.py)
    log:
        "results/logs/action_units/{video}.log",
    benchmark:
        "results/benchmarks/action_units/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox action-units {input.video:q} {input.landmarks:q} {output:q} --params {params.cfg:q} {params.openface} > {log:q} 2>&1"
