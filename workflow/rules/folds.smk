# folds (cv.scheme kfold / loso): one sheet per fold, the study's (included) sheet with every video's split
# set by its subject's place in the fold - test (the held-out subjects), dev (carved from the training
# subjects) or train. The assignment is computed when the DAG is built (facevox.dataset.folds.assignments)
# and is the job's params, so a fold whose subjects did not move is not rebuilt; each fold then has its own
# shard set (normalisation fitted on its training part), trainings and metrics: the {fold} wildcard.
# -> facevox.dataset.folds.run · tests/test_folds.py
rule fold_sheet:
    input:
        SHEET,
    output:
        "results/folds/fold{k}.tsv",
    params:
        assignment=fold_assignment,
    wildcard_constraints:
        k="[0-9]+",
    log:
        "results/logs/fold_sheet/fold{k}.log",
    benchmark:
        "results/benchmarks/fold_sheet/fold{k}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox fold-sheet {input:q} {output:q} --assignment {params.assignment:q} > {log:q} 2>&1"
