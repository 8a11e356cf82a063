# report: metric tables (mean ± sd over seeds, reported numbers, bootstrap CI), plots per
# model, the QA overview and the run card; `snakemake --report results/report.html` gathers
# the outputs marked report(...) below, captions in workflow/report/.
# -> facevox.report.tables.write_tables / facevox.report.plots.model_plots, qa_plot / facevox.report.run_card.run_card
#    (CLI: facevox.cli.report) · tests/test_tables.py, tests/test_report.py
rule tables:
    input:
        metrics=model_targets(),
        predictions=predictions_of(model_targets()),
        references=os.path.join(workflow.basedir, "resources", "reference_results.yaml"),
    output:
        html=[
            report(
                f"results/tables/{task}.html",
                caption="../report/tables.rst",
                category="Metric tables",
                labels={"table": task},
            )
            for task in TABLE_TASKS
        ],
        other=expand("results/tables/{task}.{ext}", task=TABLE_TASKS, ext=["csv", "md", "tex"]),
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.html[0]),
        tasks=",".join(TABLE_TASKS),
        order=",".join(config["models"]["run"]),
        split=REPORT["split"],
        resamples=REPORT["bootstrap_resamples"],
        seed=REPORT["bootstrap_seed"],
        level=REPORT["ci_level"],
        reference=REPORT["paired_reference"],
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox tables {params.outdir:q} --metrics {input.metrics:q} --predictions {input.predictions:q}"
        " --references {input.references:q} --tasks {params.tasks} --order {params.order} --split {params.split:q}"
        " --resamples {params.resamples} --seed {params.seed} --ci-level {params.level}"
        " --reference {params.reference:q} > {log:q} 2>&1"


rule plots:
    input:
        metrics=expand("results/metrics/{{model}}/seed{seed}.json", seed=config["models"]["seeds"]),
        predictions=expand("results/predictions/{{model}}/seed{seed}.parquet", seed=config["models"]["seeds"]),
    output:
        report(
            directory("results/plots/{model}"),
            patterns=["{figure}.png"],
            caption="../report/plots.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{figure}"},
        ),
    params:
        split=REPORT["split"],
    log:
        "results/logs/plots/{model}.log",
    benchmark:
        "results/benchmarks/plots/{model}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox plots {output:q} --metrics {input.metrics:q} --predictions {input.predictions:q}"
        " --split {params.split:q} > {log:q} 2>&1"


rule qa_plot:
    input:
        "results/qa.tsv",
    output:
        report("results/plots/qa_overview.png", caption="../report/qa.rst", category="Quality control"),
    log:
        "results/logs/qa_plot.log",
    benchmark:
        "results/benchmarks/qa_plot.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox qa-plot {input:q} {output:q} > {log:q} 2>&1"


rule run_card:
    input:
        run_card_inputs,
    output:
        report(RUN_CARD, caption="../report/run_card.rst", category="Run"),
    params:
        cfg=json.dumps(config, sort_keys=True, default=str),
        metrics=model_targets(),
        study=json.dumps(STUDY_WARNINGS),
        inputs=f"--inputs {INPUTS_TABLE}" if SOURCE == "videos" else "",
    log:
        "results/logs/run_card.log",
    benchmark:
        "results/benchmarks/run_card.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox run-card {output:q} --config-json {params.cfg:q} --benchmarks results/benchmarks"
        " --metrics {params.metrics:q} --study-warnings-json {params.study:q} {params.inputs} > {log:q} 2>&1"
