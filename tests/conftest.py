"""Shared fixtures: where ../shared/data is, and a skip when it is absent.

The suite runs in fp32 on any CPU: ``precision = "auto"`` resolves to what
CONNECTO_PRECISION says (bf16 would be ~20x slower on a CPU without native bf16, and the
expected accuracies were measured in fp32). Tests of ``auto`` itself clear it. The precision
probe's cache goes to a temporary directory, never the user's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ["CONNECTO_PRECISION"] = "fp32"
os.environ["CONNECTO_CACHE_DIR"] = tempfile.mkdtemp(prefix="connecto-test-cache-")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real EM data not found at {SHARED_DATA} (the ../shared checkout beside the repository)")
    return SHARED_DATA
