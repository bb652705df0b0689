"""The `--cluster` and `--database-url` options of `tapgate bench`."""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url

# Each node is a separate process on this machine; more than this is not a useful run on one host.
MAX_NODES = 16


def parse_node_counts(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, ...] | None:
    """Parse `--cluster 1,2,3` into node counts."""
    if value is None:
        return None
    try:
        counts = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected comma-separated node counts, e.g. 1,2,3"
        ) from None
    if not counts or min(counts) < 1 or max(counts) > MAX_NODES:
        raise click.BadParameter(f"{value!r}: every node count must be from 1 to {MAX_NODES}")
    return counts


def check_cluster_options(
    node_counts: tuple[int, ...] | None, database_url: str | None, scale: bool
) -> None:
    """Raise click.BadParameter when the cluster options do not fit together."""
    if node_counts is None:
        if database_url is not None:
            raise click.BadParameter("--database-url is used only with --cluster")
        return
    if database_url is None:
        raise click.BadParameter(
            "--cluster needs --database-url, e.g. postgresql://postgres@127.0.0.1/postgres"
        )
    try:
        backend = make_url(database_url).get_backend_name()
    except Exception:
        raise click.BadParameter(f"--database-url {database_url!r} is not a valid URL") from None
    if backend not in ("postgresql", "postgres"):
        raise click.BadParameter(
            f"--database-url must be a postgresql:// URL, got {backend!r}: several nodes "
            "need PostgreSQL"
        )
    if scale:
        raise click.BadParameter("--scale runs on one SQLite node; leave it out with --cluster")
