# probe: container, streams, fps (and whether variable), frames, duration, audio, rotation.
# -> facevox.extract.probe.run · tests/test_probe.py
rule probe:
    input:
        video=video_path,
    output:
        "results/probe/{video}.json",
    group:
        PER_VIDEO
    log:
        "results/logs/probe/{video}.log",
    benchmark:
        "results/benchmarks/probe/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox probe {input.video:q} {output:q} > {log:q} 2>&1"
