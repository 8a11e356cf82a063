"""Metric tables, their text: a built facevox.report.tables.Table as the exact cell strings,
Markdown, LaTeX and a CSV frame, its HTML page (made by facevox.report.pages.table_page),
and :func:`write_tables`, which builds the tables from the files and writes all four.

Cells: ``mean ± sd (n=k)`` (:func:`format_cell`; one seed ``mean ± – (n=1)``, none ``–``),
an interval ``[low, high]`` (:func:`format_ci`), a paired difference ``+1.23 [0.50, 2.10]``
with its p-value, Holm-adjusted p-value and verdict (:func:`format_paired`), a reported number with
:data:`REPORTED_DECIMALS` (:func:`format_value`), the Videos cell (:func:`videos_text`).
LaTeX spells ``±`` and ``–`` as ``$\\pm$`` and ``--`` and escapes the rest
(:func:`latex_escape`).  What each column means: facevox.report.tables.

Files per task (``write_tables``): ``<task>.csv`` (numeric, units of the metrics JSON, i.e.
classification as fractions; columns ``<metric>_mean/_sd/_n``, ``<metric>_ci_low/_high``,
``<metric>_diff``, ``_diff_p``, ``_diff_p_holm`` ..., ``<metric>_reported_<dataset>``
converted to the same units; under cross-validation also ``cv_scheme``, ``folds``,
``n_folds``, ``<metric>_pooled`` and the per-fold columns ``<metric>_fold<k>`` and
``fold<k>_test_subjects``; with a sweep ``sweep_role`` and ``dev_choice``), ``<task>.md``
(GitHub Markdown table, under cross-validation a "Per fold" table (:func:`per_fold_blocks`),
and the notes), ``<task>.tex`` (a booktabs ``table``; needs ``\\usepackage{booktabs}``;
no per-fold table) and ``<task>.html`` (a standalone page for ``snakemake --report``, with
the per-fold table).

Tests: tests/test_tables.py, tests/test_tables_cv.py
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from facevox.io import atomic_path
from facevox.report.pages import table_page
from facevox.report.table_inputs import Metric
from facevox.report.table_rows import DASH, DELTA, PM, TITLES, UNITS_NOTE, Row, Table, left_out_text
from facevox.report.table_stats import Summary, cv_text
from facevox.report.tables import build_tables


# --------------------------------------------------------------------------- cells
def format_cell(s: Summary, metric: Metric, latex: bool = False) -> str:
    """``70.70 ± 1.23 (n=3)``; ``70.70 ± – (n=1)``; ``–`` (LaTeX: ``$\\pm$`` and ``--``)."""
    dash, pm = ("--", "$\\pm$") if latex else (DASH, PM)
    if s.n == 0:
        return dash
    mean = f"{s.mean * metric.scale:.{metric.decimals}f}"
    sd = f"{s.sd * metric.scale:.{metric.decimals}f}" if s.n > 1 else dash
    return f"{mean} {pm} {sd} (n={s.n})"


#: Decimals of a reported number: the seed papers print two everywhere.
REPORTED_DECIMALS = 2


def format_value(value: float | None, metric: Metric, latex: bool = False, decimals: int | None = None) -> str:
    """One number in the cell's units and decimals (``decimals`` overrides); ``–`` for none."""
    if value is None or not math.isfinite(value):
        return "--" if latex else DASH
    return f"{value * metric.scale:.{metric.decimals if decimals is None else decimals}f}"


def format_ci(ci: dict | None, metric: Metric, latex: bool = False) -> str:
    """``[low, high]`` of a bootstrap interval in the cell's units; ``–`` for none."""
    if not ci or not math.isfinite(ci["low"]):
        return "--" if latex else DASH
    return f"[{format_value(ci['low'], metric)}, {format_value(ci['high'], metric)}]"


def format_paired(pair: dict | None, metric: Metric, latex: bool = False) -> tuple[str, str, str, str]:
    """(``+1.23 [0.50, 2.10]``, ``0.012``, ``0.036``, ``yes, better``) of one paired comparison: the
    difference and its interval, p, the Holm-adjusted p and the verdict (Holm-adjusted)."""
    dash = "--" if latex else DASH
    if not pair or not math.isfinite(pair["difference"]):
        return dash, dash, dash, dash
    diff = f"{pair['difference'] * metric.scale:+.{metric.decimals}f}"
    if math.isfinite(pair["low"]):
        low, high = pair["low"] * metric.scale, pair["high"] * metric.scale
        diff += f" [{low:+.{metric.decimals}f}, {high:+.{metric.decimals}f}]"
    p = f"{pair['p_value']:.3f}" if math.isfinite(pair["p_value"]) else dash
    p_holm = f"{pair['p_holm']:.3f}" if math.isfinite(pair.get("p_holm", math.nan)) else dash
    sig = ("yes, better" if pair["better"] == "a" else "yes, worse") if pair["significant"] else "no"
    return diff, p, p_holm, sig


def videos_text(row: Row, latex: bool = False) -> str:
    """The Videos cell: videos predicted (a range when the seeds differ), the most a seed left
    unpredicted, the classes with no predicted video."""
    if not row.videos:
        return "--" if latex else DASH
    lo, hi = min(row.videos), max(row.videos)
    text = str(lo) if lo == hi else f"{lo}{'--' if latex else DASH}{hi}"
    text += f" (+{max(row.unpredicted)} unpred.)" if row.unpredicted and max(row.unpredicted) else ""
    return text + "".join(f" [no {label} video]" for label in row.classes_lost)


# --------------------------------------------------------------------------- renderings
def _lead(table: Table) -> list[str]:
    """The columns before the metrics: Model, Seeds, (Folds), Videos, (Dev choice)."""
    return ["Model", "Seeds", *(["Folds"] if table.cv else []), "Videos",
            *(["Dev choice"] if table.has_sweep else [])]


def _pooled(table: Table) -> list[Metric]:
    return list(table.ci_metrics) if table.has_pooled else []


def _header(table: Table) -> list[str]:
    level = f"{100 * table.level:g} %"
    cols = [*_lead(table), *[m.label for m in table.metrics], *[f"{m.label} pooled OOF" for m in _pooled(table)]]
    if table.has_ci:
        cols += [f"{m.label} {level} CI" for m in table.ci_metrics]
    cols += _paired_header(table)
    cols += [f"{m.label} [reported {g}]" for m, g in table.reported_columns]
    return cols + (["Source"] if table.reported_columns else [])


def _paired_header(table: Table, latex: bool = False) -> list[str]:
    if not table.has_paired:
        return []
    level = f"{100 * table.level:g}\\,\\%" if latex else f"{100 * table.level:g} %"
    delta = "$\\Delta$" if latex else DELTA
    esc = latex_escape if latex else (lambda s: s)
    return [h for m in table.ci_metrics for h in (f"{delta} {esc(m.label)} vs ref ({level} CI)", f"p ({esc(m.label)})",
                                                   f"p (Holm, {esc(m.label)})", f"Sig. ({esc(m.label)})")]


def _paired_cells(table: Table, row: Row, latex: bool = False) -> list[str]:
    if not table.has_paired:
        return []
    if row.is_reference:
        dash = "--" if latex else DASH
        return [c for _ in table.ci_metrics for c in ("reference", dash, dash, dash)]
    return [c for m in table.ci_metrics for c in format_paired(row.paired.get(m.key), m, latex)]


def _cells(table: Table, row: Row, latex: bool = False) -> list[str]:
    esc = latex_escape if latex else (lambda s: s)
    cells = [esc(row.label), str(len(row.seeds)), *([str(len(row.folds))] if table.cv else []),
             videos_text(row, latex), *([esc(row.selection or DASH)] if table.has_sweep else []),
             *[format_cell(row.stats[m.key], m, latex) for m in table.metrics],
             *[format_value(row.pooled.get(m.key), m, latex) for m in _pooled(table)]]
    if table.has_ci:
        cells += [format_ci(row.ci.get(m.key), m, latex) for m in table.ci_metrics]
    cells += _paired_cells(table, row, latex)
    cells += [format_value(row.reported.get((m.key, g)), m, latex, REPORTED_DECIMALS)
              for m, g in table.reported_columns]
    if table.reported_columns:
        cells.append(esc("; ".join(row.sources)) if row.sources else ("--" if latex else DASH))
    return cells


def table_frame(table: Table) -> pd.DataFrame:
    """The CSV: numbers in the metrics JSON's units (classification as fractions)."""
    records = []
    for row in table.rows:
        rec = {"model": row.model, "variant": row.variant, "label": row.label, "split": table.split,
               "seeds": " ".join(map(str, row.seeds)), "n_seeds": len(row.seeds),
               "videos_min": min(row.videos) if row.videos else None,
               "videos_max": max(row.videos) if row.videos else None,
               "unpredicted_max": max(row.unpredicted) if row.unpredicted else 0,
               "unpredicted_videos": " ".join(row.unpredicted_videos),
               "classes_unpredicted": " ".join(row.classes_lost),
               "left_out": "; ".join(left_out_text(r) for r in row.left_out),
               "n_parameters": row.n_parameters}
        if table.cv:
            rec |= {"cv_scheme": table.cv["scheme"], "folds": " ".join(map(str, row.folds)), "n_folds": len(row.folds)}
        if table.has_sweep:
            rec |= {"sweep_role": row.role, "dev_choice": row.selection}
        for m in table.metrics:
            s = row.stats[m.key]
            rec |= {f"{m.key}_mean": s.mean, f"{m.key}_sd": s.sd, f"{m.key}_n": s.n}
        rec |= {f"{m.key}_pooled": row.pooled.get(m.key) for m in _pooled(table)}
        if table.cv:  # per-fold columns: the headline metric of each fold, its held-out subjects
            rec |= {f"{m.key}_fold{k}": row.fold_values.get(m.key, {}).get(k) for m in table.ci_metrics
                    for k in range(table.cv["folds"])}
            rec |= {f"fold{k}_test_subjects": n for k, n in table.cv["held_out"].items()}
        if table.has_ci:
            for m in table.ci_metrics:
                ci = row.ci.get(m.key) or {}
                rec |= {f"{m.key}_ci_low": ci.get("low"), f"{m.key}_ci_high": ci.get("high"),
                        f"{m.key}_ci_level": table.level, f"{m.key}_ci_resamples": table.resamples,
                        f"{m.key}_ci_seed": table.seed}
        if table.has_paired:
            rec["paired_reference"] = table.reference
            for m in table.ci_metrics:
                pair = row.paired.get(m.key) or {}
                rec |= {f"{m.key}_diff": pair.get("difference"), f"{m.key}_diff_low": pair.get("low"),
                        f"{m.key}_diff_high": pair.get("high"), f"{m.key}_diff_p": pair.get("p_value"),
                        f"{m.key}_diff_p_holm": pair.get("p_holm"),
                        f"{m.key}_diff_significant": pair.get("significant"),
                        f"{m.key}_diff_better": pair.get("better")}
        for m, g in table.reported_columns:
            rec[f"{m.key}_reported_{g.replace(' ', '_')}"] = row.reported.get((m.key, g))
        if table.reported_columns:
            rec["reported_source"] = "; ".join(row.sources)
        records.append(rec)
    return pd.DataFrame(records)


def per_fold_blocks(table: Table) -> list[tuple[str, list[str], list[list[str]]]]:
    """Under cross-validation, per headline metric, the per-fold table as (title, header, rows):
    each row's value of every fold (the mean over the fold's seeds), the fold's name and its
    held-out subjects in the header; [] for the fixed split."""
    if table.cv is None:
        return []
    folds, held = range(table.cv["folds"]), table.cv["held_out"]
    header = ["Model"] + [f"fold{k} ({held[k]} subject{'' if held[k] == 1 else 's'} held out)" if k in held
                          else f"fold{k}" for k in folds]
    return [(f"Per fold: {m.label}, {table.split} split (mean over the fold's seeds)", header,
             [[row.label, *[format_value(row.fold_values.get(m.key, {}).get(k), m) for k in folds]]
              for row in table.rows]) for m in table.ci_metrics]


def table_markdown(table: Table) -> str:
    """A GitHub Markdown table, title above, notes below as a list."""
    head = _header(table)
    lines = [f"## {TITLES[table.task]} ({table.split} split)", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join(":---" if h in ("Model", "Dev choice", "Source") else "---:" for h in head) + "|"]
    for row in table.rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(table, row)) + " |")
    if not table.rows:
        lines.append("| " + " | ".join([f"no {table.task} results"] + [""] * (len(head) - 1)) + " |")
    for title, header, rows in per_fold_blocks(table):
        lines += ["", f"### {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in rows]
    lines += [""] + [f"- {note}" for note in table.notes()]
    return "\n".join(lines) + "\n"


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  DASH: "--", PM: r"$\pm$"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters (and the en dash, the plus-minus sign) escaped."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _caption(table: Table) -> str:
    """The LaTeX caption: what the cells, the CI, the paired columns and the reported ones are."""
    alpha = f"{1 - table.level:.2g}"
    if table.cv is None:
        cells = "video level. Ours: mean $\\pm$ sd (ddof 1) over seeds, n = seeds with a value. "
    else:
        cells = (f"{latex_escape(cv_text(table.cv))}, video level. Ours: mean $\\pm$ sd (ddof 1) over folds of the "
                 f"fold's mean over its seeds, n = folds with a value. ")
    if table.unit == "video":
        ci = f" CI: video-level percentile bootstrap ({table.resamples} resamples, seed {table.seed})."
    else:
        ci = (f" CI: subject-level percentile bootstrap ({latex_escape(table.units_text())}; {table.resamples} "
              f"resamples, seed {table.seed}).")
    return (f"{TITLES[table.task]}: {latex_escape(table.split)} split, " + cells
            + latex_escape(UNITS_NOTE[table.task])
            + (" Pooled OOF: the headline metric of the pooled out-of-fold predictions (mean over seeds); the CI "
               "and $\\Delta$ are computed on them." if table.has_pooled else "")
            + (ci if table.has_ci else "")
            + (f" $\\Delta$ vs ref: difference to the reference row ({latex_escape(table.reference)}) with "
               f"the interval of a paired bootstrap over the shared seeds and {table.unit}s; p: its two-sided "
               f"bootstrap p-value; p (Holm): Holm-adjusted over the table's m = {table.holm_m} paired tests; "
               f"Sig.: p (Holm) $<$ {alpha}." if table.has_paired else "")
            + (" Dev choice: a sweep's grid point chosen on the dev split (the test split was not used to choose)."
               if table.has_sweep else "")
            + (" Reported: published numbers (source column), not part of our statistics."
               if table.reported_columns else ""))


def table_latex(table: Table) -> str:
    """A booktabs table: our columns under one group, the reported ones under another."""
    n_paired = len(_paired_header(table))
    lead = _lead(table)
    n_ours = len(table.metrics) + len(_pooled(table)) + (len(table.ci_metrics) if table.has_ci else 0) + n_paired
    level = f"{100 * table.level:g}\\,\\%"
    spec = "".join("l" if h in ("Model", "Dev choice") else "r" for h in lead) + "c" * n_ours \
        + "r" * len(table.reported_columns) + ("l" if table.reported_columns else "")
    head = [*lead, *[latex_escape(m.label) for m in table.metrics],
            *[f"{latex_escape(m.label)} pooled OOF" for m in _pooled(table)]]
    if table.has_ci:
        head += [f"{latex_escape(m.label)} {level} CI" for m in table.ci_metrics]
    head += _paired_header(table, latex=True)
    head += [latex_escape(m.label) for m, _ in table.reported_columns]
    head += ["Source"] if table.reported_columns else []
    over = "folds" if table.cv else "seeds"
    group = [f"\\multicolumn{{{n_ours}}}{{c}}{{ours: mean $\\pm$ sd over {over} (n)}}"]
    rules = [f"\\cmidrule(lr){{{len(lead) + 1}-{len(lead) + n_ours}}}"]
    col = len(lead) + 1 + n_ours
    for g in dict.fromkeys(g for _, g in table.reported_columns):
        width = sum(1 for _, gg in table.reported_columns if gg == g)
        group.append(f"\\multicolumn{{{width}}}{{c}}{{reported ({latex_escape(g)})}}")
        rules.append(f"\\cmidrule(lr){{{col}-{col + width - 1}}}")
        col += width
    caption = _caption(table)
    lines = [
        "% facevox metric table; needs \\usepackage{booktabs}",
        "\\begin{table}[htbp]",
        "\\centering",
        "\\footnotesize",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:facevox-{table.task}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join([""] * len(lead) + group + ([""] if table.reported_columns else [])) + " \\\\",
        "".join(rules),
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    for row in table.rows:
        lines.append(" & ".join(_cells(table, row, latex=True)) + " \\\\")
    if not table.rows:
        lines.append(f"\\multicolumn{{{len(head)}}}{{l}}{{no {table.task} results}} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def table_html(table: Table) -> str:
    """The table's standalone HTML page (facevox.report.pages.table_page): our cells, the CI and
    paired columns and the reported ones in their own CSS classes, the notes below."""
    head = _header(table)
    n_fixed = len(_lead(table)) + len(table.metrics)
    n_ci = len(_pooled(table)) + (len(table.ci_metrics) if table.has_ci else 0) + len(_paired_header(table))

    def kind(i):
        if i < n_fixed:
            return "name" if i == 0 else "" if head[i] == "Dev choice" else "num"
        if i < n_fixed + n_ci:
            return "num ci"
        return "num rep first-rep" if i == n_fixed + n_ci else "num rep"

    title = TITLES[table.task]
    return table_page(title, f"{title} ({table.split} split)", head, [_cells(table, row) for row in table.rows],
                      [kind(i) for i in range(len(head))], table.notes(), f"no {table.task} results",
                      sections=per_fold_blocks(table))


# --------------------------------------------------------------------------- files
def write_tables(metrics_paths, predictions_paths, references_path, out_dir, *, tasks: Iterable[str] | None = None,
                 split: str = "test", order: Iterable[str] = (), resamples: int = 1000, seed: int = 0,
                 level: float = 0.95, reference: str = "best",
                 subjects: Mapping[str, str] | None = None) -> dict[str, Table]:
    """``<out_dir>/<task>.{csv,md,tex,html}`` for every task in ``tasks`` (default: those of
    the metrics files), the tables of facevox.report.tables.build_tables (same arguments).
    ``predictions_paths[i]`` belongs to ``metrics_paths[i]``; an empty list means no
    bootstrap intervals and no paired comparisons; ``reference``: the paired comparisons'
    reference row (``best`` or a model name / row label); ``subjects``: video id -> subject id
    (facevox.report.tables.sheet_subjects), the bootstrap's unit (None: the video)."""
    built = build_tables(metrics_paths, predictions_paths, references_path, tasks=tasks, split=split, order=order,
                         resamples=resamples, seed=seed, level=level, reference=reference, subjects=subjects)
    out_dir = Path(out_dir)
    out = {}
    for table in built:
        for ext, text in (("md", table_markdown(table)), ("tex", table_latex(table)), ("html", table_html(table)),
                          ("csv", table_frame(table).to_csv(index=False))):
            with atomic_path(out_dir / f"{table.task}.{ext}") as tmp:
                tmp.write_text(text)
        out[table.task] = table
    return out
