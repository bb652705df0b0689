"""Helpers every command shares: the --config option, the database, error reporting."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from tapgate.errors import ConfigError, TapgateError
from tapgate.keys import KeyRing, load_or_create_key_file
from tapgate.settings import Settings, load_settings
from tapgate.store.database import Database, parse_database_url
from tapgate.store.migrate import upgrade

T = TypeVar("T")

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Settings file (YAML); default: TAPGATE_CONFIG, else the embedded default.",
)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(function: Callable[..., T]) -> Callable[..., T]:
    """Turn tapgate's expected errors into one line on standard error and exit status 1."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except TapgateError as exc:
            fail(str(exc))
            raise AssertionError("unreachable") from exc

    return wrapper


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class Context:
    """Settings, key ring and database for one CLI command."""

    def __init__(self, config_file: str | None) -> None:
        self.settings: Settings = load_settings(config_file)
        path = parse_database_url(self.settings.database_url).sqlite_path
        if path is not None and not path.exists():
            # Creating a fresh database here would hide the real one from the administrator.
            raise ConfigError(
                f"no tapgate database at {path.resolve()}; run this command where "
                "`tapgate serve` runs, or pass --config FILE (or set TAPGATE_CONFIG)"
            )
        upgrade(self.settings.database_url)
        self.keyring = KeyRing(load_or_create_key_file(self.settings.key_file))
        self.database = Database(self.settings.database_url)

    async def close(self) -> None:
        await self.database.close()


async def with_context(config_file: str | None, body: Callable[[Context], Awaitable[T]]) -> T:
    context = Context(config_file)
    try:
        return await body(context)
    finally:
        await context.close()
