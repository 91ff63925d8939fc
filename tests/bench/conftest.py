"""Benchmarks run on demand only: `pytest -m bench tests/bench -s`, or with GROUNDCTL_BENCH=1."""

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if "bench" in (config.getoption("-m") or "") or os.environ.get("GROUNDCTL_BENCH") == "1":
        return
    skip = pytest.mark.skip(reason="benchmark: run with -m bench (or GROUNDCTL_BENCH=1)")
    for item in items:
        if item.get_closest_marker("bench") is not None:
            item.add_marker(skip)
