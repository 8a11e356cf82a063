# inputs: which videos the aggregates read. A per-video stage that cannot read its video writes an
# excluded record with the reason instead of failing (no retry, no hole in the DAG); this gate reads
# every video's probe, egemaps and landmarks records and writes results/inputs.tsv (every video: included
# or excluded, and why) and the sheet of the included videos, which shards, train and evaluate read.
# on_bad_input: fail stops the run here, before shards and training, listing every excluded video;
# so does target.on_identity_overlap: fail (its rule, identity_overlap.smk, is an input of this gate).
# -> facevox.extract.exclusion.screen · tests/test_exclusion.py
if SOURCE == "videos":

    rule inputs:
        input:
            sheet=config["samples"],
            records=inputs_records(),
            identity_overlap=IDENTITY_OVERLAP,  # on_identity_overlap: fail stops the run here too
        output:
            table=report(INPUTS_TABLE, caption="../report/inputs.rst", category="Inputs"),
            sheet=INCLUDED_SHEET,
        params:
            mode=config["on_bad_input"],
        retries: 0  # it fails only on purpose (on_bad_input: fail), and the same way every time
        log:
            "results/logs/inputs.log",
        benchmark:
            "results/benchmarks/inputs.tsv"
        conda:
            "../../envs/facevox.yaml"
        shell:
            "python -m facevox inputs {input.sheet:q} {output.table:q} {output.sheet:q} {input.records:q}"
            " --on-bad-input {params.mode} > {log:q} 2>&1"
