# models: one training per (model, fold, seed) of models.run (a swept model: each of its variants,
# stst@lr=0.0001,dropout=0.1) x the folds (cv: results/.../fold<k>/; the sheet's splits: no fold part)
# x models.seeds, then its evaluation on dev and test (under cv: the fold's dev part and held-out subjects).
# Slice models read the (fold's) shard set, sta_drn / dlga_cnn the aligned faces,
# shallow_* the FAU windows and affect labels (train_inputs in common.smk). Training jobs ask
# for `gpu: 1` (0 for the scikit-learn baselines or models.device: cpu; on SLURM gpu=0 also
# means the CPU partition, model_partition) and pick their GPU themselves (facevox.training.device).
# -> facevox.training.loop.train / facevox.training.loop.evaluate · tests/test_train.py, tests/test_evaluate.py


rule train:
    input:
        unpack(train_inputs),
    output:
        "results/models/{model}/{fold}seed{seed}.ckpt",
    params:
        cfg=model_json,
        data=train_data,
        sheet=lambda wildcards: fold_sheet(wildcards.fold),
    threads: config["models"]["threads"]
    resources:
        gpu=model_gpus,
        slurm_partition=model_partition,  # SLURM only: the GPU partition for gpu=1 jobs
    log:
        "results/logs/train/{model}/{fold}seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{model}/{fold}seed{seed}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox train {wildcards.model} {params.data:q} {output:q} --seed {wildcards.seed}"
        " --sheet {params.sheet:q} --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"


rule evaluate:
    input:
        unpack(train_inputs),
        model="results/models/{model}/{fold}seed{seed}.ckpt",
    output:
        metrics="results/metrics/{model}/{fold}seed{seed}.json",
        predictions="results/predictions/{model}/{fold}seed{seed}.parquet",
    params:
        cfg=model_json,
        data=train_data,
        sheet=lambda wildcards: fold_sheet(wildcards.fold),
        fold=fold_option,
    threads: config["models"]["threads"]
    resources:
        gpu=model_gpus,
        slurm_partition=model_partition,  # SLURM only: the GPU partition for gpu=1 jobs
    log:
        "results/logs/evaluate/{model}/{fold}seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{fold}seed{seed}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox evaluate {input.model:q} {params.data:q} {output.metrics:q} {output.predictions:q}"
        " --sheet {params.sheet:q} --threads {threads} --params {params.cfg:q} {params.fold} > {log:q} 2>&1"


if config["models"]["affect"]["demo_labels"]:

    rule demo_affect_labels:
        input:
            "results/fau_windows/{video}.parquet",
        output:
            os.path.join(config["models"]["affect"]["labels_dir"] or "results/affect_labels", "{video}.csv"),
        group:
            PER_VIDEO
        log:
            "results/logs/demo_affect_labels/{video}.log",
        benchmark:
            "results/benchmarks/demo_affect_labels/{video}.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox demo-affect-labels {input:q} {output:q} --video-id {wildcards.video} > {log:q} 2>&1"
