"""What every benchmark report shares, without torch (bench_suite imports torch and pins
threads; bench_dvlog must not): the table row and the load average line."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Row:
    """One "measurement | measured | target | met" line."""

    what: str
    measured: str
    target: str
    met: bool | None  # None: no target

    def markdown(self) -> str:
        met = "-" if self.met is None else ("yes" if self.met else "**no**")
        return f"| {self.what} | {self.measured} | {self.target} | {met} |"


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
