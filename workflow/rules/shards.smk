# shards: fixed-length slices of every video's aligned features, normalised with train-only
# statistics, as Parquet parts. The part count depends on the data: the output is the folder,
# whose manifest.json lists the parts (norm.json holds the statistics). Under cross-validation
# one shard set per fold (results/shards/fold<k>/<feature_set>), normalised on the fold's train part.
# -> facevox.dataset.shards.run · tests/test_shards.py (datasets: facevox.dataset.datasets)
rule shards:
    input:
        sheet=lambda wildcards: fold_sheet(wildcards.fold),
        aligned=expand("results/align/{video}.parquet", video=VIDEOS),
    output:
        directory(f"results/shards/{{fold}}{config['shards']['feature_set']}"),
    params:
        cfg=stage_json("shards"),
    log:
        "results/logs/{fold}shards.log",
    benchmark:
        "results/benchmarks/{fold}shards.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox shards {input.sheet:q} results/align {output:q} --params {params.cfg:q} > {log:q} 2>&1"
