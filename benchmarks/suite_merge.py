"""suite.md as parts: written whole by a full ``make bench``, or some parts replaced by
``bench_suite.py --only PART,...`` (the other parts' rows, notes and sections kept as they were).

A part's rows, notes (the "- " lines under the table) and sections (the "### " headings of the
"where the time goes" chapter) are recognised by their text (:data:`ROWS`, :data:`NOTES`,
:data:`SECTIONS`); anything no pattern claims is kept, after the parts.
"""
from __future__ import annotations

import re

#: The suite's parts, in the order suite.md lists them.
PARTS = ("landmarks", "chain", "egemaps", "snakemake", "identity", "models", "dvlog")
#: (part, pattern of a table row's first cell), first match wins.
ROWS = (("dvlog", r"^D-Vlog"), ("identity", r"^two-person composites|person video's chain"),
        ("chain", r"per-video chain"), ("landmarks", r"^landmark stage|^mean landmark distance|^lost face dropped"),
        ("egemaps", r"eGeMAPS|opensmile"),
        ("snakemake", r"snakemake|stale-only rerun|two busy processes|rerun's floor"), ("models", r"^training `"))
#: (part, pattern of a note's text after "- "), first match wins.
NOTES = (("dvlog", r"^D-Vlog|^Training: paper settings"), ("models", r"^Training:"), ("landmarks", r"^Landmarks:"),
         ("chain", r"^Chain:"), ("egemaps", r"^eGeMAPS:"), ("snakemake", r"^Snakemake:"),
         ("identity", r"^`|^Chain cost,"))
#: (part, pattern of a section's "### " heading).
SECTIONS = (("landmarks", r"^### Landmark stage"), ("chain", r"^### Per-video chain"),
            ("egemaps", r"^### eGeMAPS"), ("snakemake", r"^### .*(--cores|[Rr]erun)"))
TABLE_HEAD = ["| measurement | measured | target | met |", "|---|---:|---|---|"]
CHAPTER = "## Where the time goes: missed targets and floors"
OLD_CHAPTERS = ("## Bottlenecks of the missed targets", CHAPTER)
REMEASURED = "- Re-measured (parts: "


def part_of(text: str, patterns) -> str | None:
    return next((part for part, pattern in patterns if re.search(pattern, text)), None)


def parse(text: str) -> dict:
    """{"preamble": lines before the table, "rows": [(part, line)], "notes": [(part, line)],
    "sections": [(part, lines)]} of a suite.md."""
    lines = text.rstrip("\n").split("\n")
    head = lines.index(TABLE_HEAD[0])
    out = {"preamble": lines[:head], "rows": [], "notes": [], "sections": []}
    i = head + 2
    while i < len(lines) and lines[i].startswith("|"):
        out["rows"].append((part_of(lines[i].split("|")[1].strip(), ROWS), lines[i]))
        i += 1
    while i < len(lines) and not lines[i].startswith(OLD_CHAPTERS) and lines[i] != "All targets met.":
        if lines[i].startswith("- "):
            out["notes"].append((part_of(lines[i][2:], NOTES), lines[i]))
        i += 1
    section = None
    for line in lines[i + 1:]:
        if line.startswith("### "):
            section = (part_of(line, SECTIONS), [line])
            out["sections"].append(section)
        elif section is not None:
            section[1].append(line)
    for _, body in out["sections"]:
        while body and not body[-1]:
            body.pop()
    return out


def render(preamble: list[str], rows: dict, notes: dict, sections: dict, extra: dict | None = None) -> str:
    """suite.md from its preamble and, per part, its table rows, notes and section lines (Markdown
    lines; notes without the "- "); ``extra``: unclaimed rows / notes / sections to keep."""
    extra = extra or {"rows": [], "notes": [], "sections": []}
    lines = [*preamble, *TABLE_HEAD]
    lines += [r for p in PARTS for r in rows.get(p, [])] + extra["rows"] + [""]
    lines += [f"- {n}" for p in PARTS for n in notes.get(p, [])] + extra["notes"] + [""]
    chapter = [line for p in PARTS for line in sections.get(p, [])] + extra["sections"]
    lines += [CHAPTER, "", *chapter] if chapter else ["All targets met."]
    return "\n".join(lines).rstrip() + "\n"


def merge(old: str, new_rows: dict, new_notes: dict, new_sections: dict, remeasured: str) -> str:
    """``old`` suite.md with the parts in ``new_rows`` replaced (their rows, notes and sections) and
    ``remeasured`` (a "- Re-measured (parts: ...)" line) among the preamble's machine lines, in
    place of earlier such lines for the same parts or a subset of them."""
    doc = parse(old)
    ran = set(new_rows)
    rows = {p: [line for q, line in doc["rows"] if q == p] for p in PARTS}
    notes = {p: [line[2:] for q, line in doc["notes"] if q == p] for p in PARTS}
    sections = {p: [line for q, body in doc["sections"] if q == p for line in [*body, ""]] for p in PARTS}
    rows.update(new_rows)
    notes.update(new_notes)
    sections.update({p: new_sections.get(p, []) for p in ran})
    extra = {"rows": [line for q, line in doc["rows"] if q is None],
             "notes": [line for q, line in doc["notes"] if q is None],
             "sections": [line for q, body in doc["sections"] if q is None for line in [*body, ""]]}
    preamble = [line for line in doc["preamble"] if not (line.startswith(REMEASURED) and remeasured_parts(line) <= ran)]
    while preamble and not preamble[-1]:
        preamble.pop()
    last_item = max((i for i, line in enumerate(preamble) if line.startswith("- ")), default=len(preamble) - 1)
    preamble[last_item + 1:last_item + 1] = [remeasured]
    return render([*preamble, ""], rows, notes, sections, extra)


def remeasured_parts(line: str) -> set[str]:
    found = re.match(r"- Re-measured \(parts: ([^)]*)\)", line)
    return {p.strip() for p in found.group(1).split(",")} if found else set()
