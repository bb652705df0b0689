"""Fixtures shared by every test folder."""

from __future__ import annotations

import os

# Cheap password hashes for every test process and the servers they start; set before any
# tapgate module builds its hasher.
os.environ["TAPGATE_PASSWORD_HASH"] = "fast"

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import database_url


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    with database_url(tmp_path) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a database, so the PostgreSQL pass can select them."""
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)
