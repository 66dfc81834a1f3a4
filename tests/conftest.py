"""Shared fixtures: where ../shared/data is, and a skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real EM data not found at {SHARED_DATA} (the ../shared checkout beside the repository)")
    return SHARED_DATA
