# fau_windows: AVEC-style functionals - moving mean/std (ddof 0) of each AU; convention paper (50-frame window,
# 5-frame hop) or avec (the AVEC 2019 script's windows, to the bit); plus turns, the share of each window
# with someone speaking (eGeMAPS voicing; NaN without audio: facevox.extract.voice_activity).
# -> facevox.extract.fau_windows.run · tests/test_fau_windows.py
rule fau_windows:
    input:
        aus="results/action_units/{video}.parquet",
        egemaps="results/egemaps/{video}.parquet",
    output:
        "results/fau_windows/{video}.parquet",
    params:
        cfg=stage_json("fau_windows"),
    group:
        PER_VIDEO
    log:
        "results/logs/fau_windows/{video}.log",
    benchmark:
        "results/benchmarks/fau_windows/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        ("python -m facevox fau-windows {input.aus:q} {output:q} --egemaps {input.egemaps:q} --params {params.cfg:q}"
         " > {log:q} 2>&1")
