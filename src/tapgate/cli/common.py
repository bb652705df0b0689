"""Helpers every command shares: the --config option, the database, error reporting."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from tapgate.errors import ConfigError, ObjectError, TapgateError
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


def is_utf8(text: str) -> bool:
    """Return whether `text` encodes as UTF-8.

    Python decodes command-line arguments, and standard input in some locales, with the
    surrogateescape error handler (PEP 383): each byte that is not UTF-8 becomes a lone
    surrogate, which the database, JSON and the password hasher then fail to encode.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_bad_byte(text: str) -> str:
    """Describe where `text` stops being UTF-8, without repeating any of it."""
    for position, character in enumerate(text):
        code = ord(character)
        if 0xDC80 <= code <= 0xDCFF:
            # The surrogateescape handler keeps an undecodable byte as U+DC00 plus the byte.
            return f"byte 0x{code - 0xDC00:02x} at character {position + 1}"
        if 0xD800 <= code <= 0xDFFF:
            return f"U+{code:04X} at character {position + 1}"
    return "no UTF-8 form"


def check_text_parameters(context: click.Context) -> None:
    """Reject a text argument or option that was not valid UTF-8 before a command uses it.

    File paths are left alone, because a file name may be any bytes and Python hands such a
    name to the file system unchanged.
    """
    for param in context.command.params:
        if param.name is None or not isinstance(param.type, click.types.StringParamType):
            continue
        value = context.params.get(param.name)
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and not is_utf8(text):
                label = (
                    param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
                )
                # The value itself is not shown: it may be a password or an enrollment token.
                fail(
                    f"{label} is not valid UTF-8 ({_first_bad_byte(text)}); pass it as UTF-8 "
                    "text (check the character encoding of the terminal or script)"
                )


def read_stdin_line(label: str) -> str:
    """Read one line of standard input, line ending included.

    Raises ObjectError, naming `label` but never echoing the input, when the line is not UTF-8.
    Depending on the locale Python raises UnicodeDecodeError for such bytes or turns them into
    lone surrogates, so both are checked.
    """
    try:
        line = sys.stdin.readline()
    except UnicodeDecodeError:
        line = None
    if line is None or not is_utf8(line):
        raise ObjectError(f"{label} on standard input is not valid UTF-8; pipe it in as UTF-8 text")
    return line


def handle_errors(function: Callable[..., T]) -> Callable[..., T]:
    """Turn tapgate's expected errors into one line on standard error and exit status 1.

    Text parameters that are not valid UTF-8 are rejected the same way before the command runs.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        context = click.get_current_context(silent=True)
        if context is not None:
            check_text_parameters(context)
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
