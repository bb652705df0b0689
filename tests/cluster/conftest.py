"""Fixtures for the cluster tests: three nodes on one fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.nodes import Cluster, running_cluster
from tests.support import database_url


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    """A cluster of its own for a test that kills or changes nodes."""
    with running_cluster(tmp_path, db_url) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests of a module that leave every node running.

    Module scope cannot use the per-test `db_url` fixture, so modules using this fixture mark
    themselves with `pytest.mark.database`.
    """
    workdir = tmp_path_factory.mktemp("cluster")
    with database_url(workdir) as url, running_cluster(workdir, url) as nodes:
        yield nodes
