import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSIONS = ROOT / "missions"


@pytest.fixture
def cmac():
    from groundctl.core.scenario import load_scenario

    return load_scenario(MISSIONS / "cmac")


def groundctl_cmd() -> list[str]:
    """The installed CLI, run as a separate process the way a user runs it."""
    return [sys.executable, "-m", "groundctl"]
