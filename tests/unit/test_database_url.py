"""Mapping `database.url` to the async and sync SQLAlchemy drivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapgate.errors import ConfigError
from tapgate.store.database import DatabaseUrl, parse_database_url

PARSED = [
    pytest.param(
        "sqlite:///./tapgate-data/tapgate.db",
        DatabaseUrl(
            async_url="sqlite+aiosqlite:///./tapgate-data/tapgate.db",
            sync_url="sqlite:///./tapgate-data/tapgate.db",
            backend="sqlite",
            sqlite_path=Path("tapgate-data/tapgate.db"),
        ),
        id="sqlite-relative",
    ),
    pytest.param(
        "sqlite:////var/lib/tapgate/tapgate.db",
        DatabaseUrl(
            async_url="sqlite+aiosqlite:////var/lib/tapgate/tapgate.db",
            sync_url="sqlite:////var/lib/tapgate/tapgate.db",
            backend="sqlite",
            sqlite_path=Path("/var/lib/tapgate/tapgate.db"),
        ),
        id="sqlite-absolute",
    ),
    pytest.param(
        "postgresql://tapgate@db.ornek.com.tr/tapgate",
        DatabaseUrl(
            async_url="postgresql+psycopg://tapgate@db.ornek.com.tr/tapgate",
            sync_url="postgresql+psycopg://tapgate@db.ornek.com.tr/tapgate",
            backend="postgresql",
            sqlite_path=None,
            libpq_url="postgresql://tapgate@db.ornek.com.tr/tapgate",
        ),
        id="postgresql",
    ),
    pytest.param(
        "postgres://tapgate@db.ornek.com.tr/tapgate",
        DatabaseUrl(
            async_url="postgresql+psycopg://tapgate@db.ornek.com.tr/tapgate",
            sync_url="postgresql+psycopg://tapgate@db.ornek.com.tr/tapgate",
            backend="postgresql",
            sqlite_path=None,
            libpq_url="postgresql://tapgate@db.ornek.com.tr/tapgate",
        ),
        id="postgres-alias",
    ),
    pytest.param(
        "postgresql://tapgate:g%C3%BC%C3%A7l%C3%BC%40parola@db.ornek.com.tr:5433/tapgate",
        DatabaseUrl(
            async_url="postgresql+psycopg://tapgate:g%C3%BC%C3%A7l%C3%BC%40parola@db.ornek.com.tr:5433/tapgate",
            sync_url="postgresql+psycopg://tapgate:g%C3%BC%C3%A7l%C3%BC%40parola@db.ornek.com.tr:5433/tapgate",
            backend="postgresql",
            sqlite_path=None,
            libpq_url="postgresql://tapgate:g%C3%BC%C3%A7l%C3%BC%40parola@db.ornek.com.tr:5433/tapgate",
        ),
        id="postgresql-password-port",
    ),
    pytest.param(
        "postgresql+asyncpg://tapgate@db.ornek.com.tr/tapgate",
        DatabaseUrl(
            async_url="postgresql+psycopg://tapgate@db.ornek.com.tr/tapgate",
            sync_url="postgresql+psycopg://tapgate@db.ornek.com.tr/tapgate",
            backend="postgresql",
            sqlite_path=None,
            libpq_url="postgresql://tapgate@db.ornek.com.tr/tapgate",
        ),
        id="postgresql-other-driver",
    ),
]


@pytest.mark.parametrize(("url", "expected"), PARSED)
def test_parse_database_url(url: str, expected: DatabaseUrl) -> None:
    assert parse_database_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "SQLite needs a file path"),
        ("sqlite:///:memory:", "SQLite needs a file path"),
        ("mysql://tapgate@db.ornek.com.tr/tapgate", "unsupported database 'mysql'"),
        ("oracle://tapgate@db.ornek.com.tr/tapgate", "unsupported database 'oracle'"),
        ("veritabanı", "invalid URL 'veritabanı'"),
        ("", "invalid URL ''"),
    ],
)
def test_database_url_rejected(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_database_url(url)
