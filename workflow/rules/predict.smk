# predict: every trained (model, seed) applied to the new videos of the `predict:` sheet (video_id, path; no
# labels, no split), which the per-video rules extract like the study's videos. The model file carries
# the preprocessing it was trained with (shard parameters and train statistics, whole-video normalisation,
# clip / frame sampling), which is applied as stored - not the current config's. Under cross-validation the
# fold models' outputs are averaged. Output: results/predict/<model>/seed<s>.parquet (video_id,
# prob_positive or score, ...; the model files, their normalisation and the commit in the metadata).
# -> facevox.training.predict.predict_table · tests/test_predict.py
if PREDICT_VIDEOS:

    rule predict:
        input:
            models=lambda wildcards: expand("results/models/{model}/{fold}seed{seed}.ckpt", model=wildcards.model,
                                            fold=FOLDS, seed=wildcards.seed),
            sheet=config["predict"],
            data=predict_data,
        output:
            "results/predict/{model}/seed{seed}.parquet",
        params:
            cfg=model_json,
            folder=predict_folder,
        threads: config["models"]["threads"]
        resources:
            gpu=model_gpus,
            slurm_partition=model_partition,
        log:
            "results/logs/predict/{model}/seed{seed}.log",
        benchmark:
            "results/benchmarks/predict/{model}/seed{seed}.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox predict-table {input.models:q} --sheet {input.sheet:q} --data {params.folder:q}"
            " --out {output:q} --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"
