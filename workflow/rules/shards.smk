# shards: fixed-length slices of every video's aligned features, normalised with train-only
# statistics, as Parquet parts. The part count depends on the data: the output is the folder,
# whose manifest.json lists the parts (norm.json holds the statistics).
# -> facevox.dataset.shards.run · tests/test_shards.py (datasets: facevox.dataset.datasets)
rule shards:
    input:
        sheet=SHEET,
        aligned=expand("results/align/{video}.parquet", video=VIDEOS),
    output:
        directory(f"results/shards/{config['shards']['feature_set']}"),
    params:
        cfg=stage_json("shards"),
    log:
        "results/logs/shards.log",
    benchmark:
        "results/benchmarks/shards.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox shards {input.sheet:q} results/align {output:q} --params {params.cfg:q} > {log:q} 2>&1"
