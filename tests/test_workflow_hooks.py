"""facevox.workflow_hooks: the Snakefile's onsuccess / onerror hooks cancel the rescheduling timers
Snakemake's scheduler leaves behind (non-daemon threads the interpreter would wait for), and only those."""
import threading
import time

from facevox.workflow_hooks import SCHEDULER_MODULE, stop_scheduler_timers


def timer(module: str) -> threading.Timer:
    def action():
        pass

    action.__module__ = module
    t = threading.Timer(60.0, action)
    t.start()
    return t


def test_only_the_schedulers_timers_are_cancelled():
    ours, other = timer(f"{SCHEDULER_MODULE}.job_scheduler"), timer("somebody.else")
    try:
        assert stop_scheduler_timers() == 1
        ours.join(timeout=5)
        assert ours.finished.is_set() and not ours.is_alive()  # its thread ended at once, not in 60 s
        assert not other.finished.is_set() and other.is_alive()
    finally:
        other.cancel()
    assert stop_scheduler_timers() == 0  # nothing left to cancel


def test_snakemakes_own_rescheduling_timer_is_found():
    # The timer Snakemake 9 starts after each scheduling round (JobScheduler._schedule_reevalutation):
    # a lambda defined in snakemake.scheduling.job_scheduler, waiting the rate limit's timespan.
    from snakemake.scheduling import job_scheduler

    class Scheduler:
        _open_jobs = threading.Semaphore(0)

    t0 = time.perf_counter()
    job_scheduler.JobScheduler._schedule_reevalutation(Scheduler(), 30)
    assert stop_scheduler_timers() == 1
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.join(timeout=5)
    assert time.perf_counter() - t0 < 5 and not Scheduler._open_jobs.acquire(blocking=False)  # never fired
