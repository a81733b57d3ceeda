"""Fixtures for the ipo-sitegen suite; the helpers themselves live in helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import make_site as _make_site  # noqa: E402


@pytest.fixture
def site_factory(tmp_path):
    """make_site bound to this test's tmp_path: site_factory(files, config=None, name="site")."""

    def factory(files, config=None, name="site"):
        return _make_site(tmp_path, files, config, name)

    return factory
