"""How many pytest-xdist workers `-n auto` starts: one more than the machine's cores.

The suite keeps both cores of CI's machine busy, but a test waiting on a server it started,
a receiver or a lease leaves its worker idle meanwhile; a third worker fills that time.
Measured on the 2-core machine one after the other, quiet, PostgreSQL required: 218.0 s
with 3 workers against 230.0 s with 2, and 265.8 against 266.0-276.3 s in an earlier pair
under load (bench/RESULTS.md, "Test suite, fifth session")."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(tryfirst=True)  # ahead of xdist's own, which counts the cores
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # the variable xdist reads, as a person set it
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ) + 1
