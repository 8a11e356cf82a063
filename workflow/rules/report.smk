# report: the study page, the per-video table, per-video timelines, metric tables (mean ± sd
# over seeds, reported numbers, bootstrap CI), plots and video-level predictions per model,
# the QA overview and the run card page; `snakemake --report results/report.html` (with the
# run's --configfile; `make report`) gathers the outputs marked report(...) below, captions
# in workflow/report/. Categories are numbered in the order a reader needs them.
# -> facevox.report.study.study_page / videos.video_page, model_page / timelines.timeline_plot,
#    landmark_sheet / table_files.write_tables / plots.model_plots, qa_plot / run_card.run_card, run_card_page
#    (CLI: facevox.cli.report) · tests/test_tables.py, tests/test_report.py, tests/test_report_pages.py,
#    tests/test_report_browser.py
rule tables:
    input:
        metrics=model_targets(),
        predictions=predictions_of(model_targets()),
        references=os.path.join(workflow.basedir, "resources", "reference_results.yaml"),
        sheet=SHEET,  # subjects: the intervals and paired tests resample subjects, not videos
    output:
        html=[
            report(
                f"results/tables/{task}.html",
                caption="../report/tables.rst",
                category="4. Metric tables",
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
        " --reference {params.reference:q} --sheet {input.sheet:q} > {log:q} 2>&1"


rule plots:
    input:
        metrics=model_metrics,
        predictions=model_predictions,
    output:
        report(
            directory("results/plots/{model}"),
            patterns=["{figure}.png"],
            caption="../report/plots.rst",
            category="5. Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{figure}"},
        ),
    params:
        split=REPORT["split"],
        select_by=config["models"]["select_by"],
    log:
        "results/logs/plots/{model}.log",
    benchmark:
        "results/benchmarks/plots/{model}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox plots {output:q} --metrics {input.metrics:q} --predictions {input.predictions:q}"
        " --split {params.split:q} --select-by {params.select_by:q} > {log:q} 2>&1"


rule qa_plot:
    input:
        "results/qa.tsv",
    output:
        report("results/plots/qa_overview.png", caption="../report/qa.rst", category="6. Quality control"),
    priority: 10  # on a rerun's longest chain of jobs: first when ready (benchmarks/bench_snakemake.py)
    log:
        "results/logs/qa_plot.log",
    benchmark:
        "results/benchmarks/qa_plot.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox qa-plot {input:q} {output:q} > {log:q} 2>&1"


rule run_card_page:
    input:
        RUN_CARD,
    output:
        report(RUN_CARD_PAGE, caption="../report/run_card.rst", category="7. Run"),
    log:
        "results/logs/run_card_page.log",
    benchmark:
        "results/benchmarks/run_card_page.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox run-card-page {input:q} {output:q} > {log:q} 2>&1"


rule study_page:
    input:
        unpack(report_inputs),
    output:
        report("results/report/study.html", caption="../report/study.rst", category="1. Study"),
    params:
        cfg=json.dumps(config, sort_keys=True, default=str),
        qa=qa_option,
    log:
        "results/logs/study_page.log",
    benchmark:
        "results/benchmarks/study_page.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox study-page {input.sheet:q} {output:q} --config-json {params.cfg:q} {params.qa}"
        " --metrics {input.metrics:q} > {log:q} 2>&1"


rule video_page:
    input:
        unpack(report_inputs),
    output:
        report("results/report/videos.html", caption="../report/videos.rst", category="2. Videos"),
    params:
        qa=qa_option,
        probes=probes_option,
        order=",".join(config["models"]["run"]),
    log:
        "results/logs/video_page.log",
    benchmark:
        "results/benchmarks/video_page.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox video-page {input.sheet:q} {output:q} {params.qa} {params.probes}"
        " --metrics {input.metrics:q} --predictions {input.predictions:q} --order {params.order:q} > {log:q} 2>&1"


rule model_page:
    input:
        metrics=model_metrics,
        predictions=model_predictions,
    output:
        report(
            "results/report/models/{model}.html",
            caption="../report/model_page.rst",
            category="5. Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "predictions"},
        ),
    log:
        "results/logs/model_page/{model}.log",
    benchmark:
        "results/benchmarks/model_page/{model}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox model-page {wildcards.model} {output:q} --metrics {input.metrics:q}"
        " --predictions {input.predictions:q} > {log:q} 2>&1"


rule timeline:
    input:
        unpack(timeline_inputs),
    output:
        timeline=report(
            "results/report/timelines/{video}.png",
            caption="../report/timeline.rst",
            category="3. Timelines",
            labels={"video": "{video}", "figure": "timeline"},
        ),
        sheet=report(
            "results/report/landmarks/{video}.png",
            caption="../report/timeline.rst",
            category="3. Timelines",
            labels={"video": "{video}", "figure": "landmarks"},
        ),
    params:
        faces=faces_option,
    priority: 10  # the longest job after action_units, beside the rerun's longest chain (as qa_plot)
    log:
        "results/logs/timeline/{video}.log",
    benchmark:
        "results/benchmarks/timeline/{video}.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox timeline {wildcards.video} {output.timeline:q} {output.sheet:q}"
        " --landmarks {input.landmarks:q} --action-units {input.action_units:q} --egemaps {input.egemaps:q}"
        " {params.faces} > {log:q} 2>&1"


rule run_card:
    input:
        run_card_inputs,
    output:
        RUN_CARD,
    params:
        cfg=json.dumps(config, sort_keys=True, default=str),
        metrics=model_targets(),
        study=json.dumps(STUDY_WARNINGS),
        inputs=(f"--inputs {INPUTS_TABLE} --qa results/qa.tsv --sheet {shlex.quote(SHEET_FILE)}"
                if SOURCE == "videos" else ""),
        aus=expand("results/action_units/{video}.parquet", video=VIDEOS) if SOURCE == "videos" else [],
    log:
        "results/logs/run_card.log",
    benchmark:
        "results/benchmarks/run_card.tsv"
    conda:
        "../../envs/facevox.yaml"
    shell:
        "python -m facevox run-card {output:q} --config-json {params.cfg:q} --benchmarks results/benchmarks"
        " --metrics {params.metrics:q} --study-warnings-json {params.study:q} {params.inputs}"
        " --au-tables {params.aus:q} > {log:q} 2>&1"
