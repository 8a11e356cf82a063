# identity_overlap: the same person across videos. Every pair of videos whose target embeddings
# (landmarks provenance `target.embedding`) are one face under two subject ids, or two faces under
# one, -> results/identity_overlap.tsv. The inputs gate and qa read it: on_identity_overlap: fail
# stops the run before shards and training when one face is in two splits under two subject ids.
# -> facevox.extract.identity_overlap.run · tests/test_identity_overlap.py
if SOURCE == "videos":

    rule identity_overlap:
        input:
            sheet=config["samples"],
            landmarks=expand("results/landmarks/{video}.parquet", video=VIDEOS),
        output:
            IDENTITY_OVERLAP,
        params:
            distance=config["target"]["overlap_distance"],
            mode=config["target"]["on_identity_overlap"],
        retries: 0  # it fails only on purpose (on_identity_overlap: fail), and the same way every time
        log:
            "results/logs/identity_overlap.log",
        benchmark:
            "results/benchmarks/identity_overlap.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox identity-overlap {input.sheet:q} {output:q} {input.landmarks:q}"
            " --overlap-distance {params.distance} --on-identity-overlap {params.mode} > {log:q} 2>&1"
