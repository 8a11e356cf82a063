# report: metric tables (mean ± sd over seeds, reported numbers, bootstrap CI), plots per
# model, the QA overview and the run card; `snakemake --report results/report.html` gathers
# the outputs marked report(...) below, captions in workflow/report/.
# -> facevox.report.tables.write_tables / facevox.report.plots.model_plots, qa_plot, run_card
#    (CLI: facevox.cli.report) · tests/test_tables.py, tests/test_report.py
from facevox.report.tables import table_tasks

REPORT = config["report"]
TABLE_TASKS = table_tasks(config["models"]["run"])
RUN_CARD = "results/run_card.json"


def report_targets():
    """The report's outputs, for final_targets(): tables and plots when models are
    evaluated, the QA overview when the QA table is built (source: videos), the run card."""
    targets = []
    if model_targets():
        targets += expand("results/tables/{task}.{ext}", task=TABLE_TASKS, ext=["csv", "md", "tex", "html"])
        targets += expand("results/plots/{model}", model=config["models"]["run"])
    if SOURCE == "videos":
        targets.append("results/plots/qa_overview.png")
    return targets + [RUN_CARD]


def predictions_of(metrics):
    return [m.replace("results/metrics/", "results/predictions/", 1).removesuffix(".json") + ".parquet"
            for m in metrics]


def run_card_inputs(wildcards):
    """Everything else the run asks for, so the card is written last (stage times complete)."""
    return [t for t in final_targets() if t != RUN_CARD]


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
        outdir="results/tables",
        tasks=",".join(TABLE_TASKS),
        order=",".join(config["models"]["run"]),
        split=REPORT["split"],
        resamples=REPORT["bootstrap_resamples"],
        seed=REPORT["bootstrap_seed"],
        level=REPORT["ci_level"],
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox tables {params.outdir:q} --metrics {input.metrics:q} --predictions {input.predictions:q}"
        " --references {input.references:q} --tasks {params.tasks} --order {params.order} --split {params.split:q}"
        " --resamples {params.resamples} --seed {params.seed} --ci-level {params.level} > {log:q} 2>&1"


rule model_plots:
    input:
        metrics=expand("results/metrics/{{model}}/seed{seed}.json", seed=config["models"]["seeds"]),
        predictions=expand("results/predictions/{{model}}/seed{seed}.parquet", seed=config["models"]["seeds"]),
    output:
        report(
            directory("results/plots/{model}"),
            patterns=["{figure}.png"],
            caption="../report/model_plots.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{figure}"},
        ),
    params:
        split=REPORT["split"],
    log:
        "results/logs/model_plots/{model}.log",
    benchmark:
        "results/benchmarks/model_plots/{model}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox report-plots {output:q} --metrics {input.metrics:q} --predictions {input.predictions:q}"
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
    log:
        "results/logs/run_card.log",
    benchmark:
        "results/benchmarks/run_card.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox run-card {output:q} --config-json {params.cfg:q} --benchmarks results/benchmarks"
        " --metrics {params.metrics:q} > {log:q} 2>&1"
