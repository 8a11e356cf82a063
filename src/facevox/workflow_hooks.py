"""What the Snakefile's ``onsuccess`` / ``onerror`` hooks do besides the summaries: let Snakemake exit
as soon as its work is done.

Snakemake 9 runs its job scheduler again one timespan after every scheduling round whenever a job
rate limit is set - and ``--max-jobs-per-timespan`` defaults to ``100/1s``, so it always is - by a
:class:`threading.Timer` (``JobScheduler._schedule_reevalutation``) that is not a daemon thread.
After the last job the interpreter therefore waits for the last of these timers, up to the 1-s
timespan, before it exits: ~0.75 s of every run measured on a 2-core Xeon, 5 % of a stale-only
rerun of one video (benchmarks/bench_snakemake.py).  When the hooks run the scheduler has
returned, so those timers would only wake a scheduler that is gone: :func:`stop_scheduler_timers`
cancels them.  A dry run has no rate limiter (nothing to cancel).
"""
from __future__ import annotations

import threading

#: The module whose timers are cancelled (where Snakemake's scheduler makes them).
SCHEDULER_MODULE = "snakemake.scheduling"


def stop_scheduler_timers() -> int:
    """Cancel the pending timers Snakemake's scheduler started (see the module docstring); the
    number cancelled.  Other timers are left alone."""
    n = 0
    for thread in threading.enumerate():
        action = getattr(thread, "function", None)
        if isinstance(thread, threading.Timer) and getattr(action, "__module__", "").startswith(SCHEDULER_MODULE):
            thread.cancel()
            n += 1
    return n
