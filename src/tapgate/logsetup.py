"""Logging to standard error through the standard library: one line per event, key=value fields."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

from tapgate.errors import ConfigError


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A handler that writes to whatever `sys.stderr` is now, so a replaced stderr is followed."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _LoopTurnHandler(_StderrHandler):
    """A stderr handler that writes the lines of one turn of the event loop in one write.

    A server logs two lines a push login at INFO and five at DEBUG, and each took a `write`
    system call of its own before. Lines logged on the event loop's thread wait in a list until
    the loop's next turn, at most until the callbacks already queued have run. Lines from other
    threads, and every line once no loop runs, are written at once, after the waiting ones.
    `logging.shutdown`, which runs at exit, writes whatever still waits.
    NOTE: a process killed with SIGKILL loses the lines of its last turn.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._waiting.append(line)
            self.flush()
            return
        if not self._waiting:
            loop.call_soon(self.flush)
        self._waiting.append(line)

    def flush(self) -> None:
        self.acquire()
        try:
            if not self._waiting:
                return
            text = "".join(self._waiting)
            self._waiting.clear()
            stream: Any = self.stream
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass  # stderr is closed or gone; there is nowhere left to report it
        finally:
            self.release()


class _Formatter(logging.Formatter):
    """The standard formatter, with the date and time up to the second formatted once a second.

    `time.strftime` on every record was a tenth of the logging cost in the login benchmark,
    when it logged five lines a login. The text is the same as the standard `asctime`.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        # (whole second, its text), replaced as one object so threads never see a mix.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # The format string above, written out: the standard path looks for "asctime" in it
        # and fills it from a copy of the record's attributes on every record.
        record.message = record.getMessage()
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {record.message}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second, text = self._second
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        return f"{text},{int(record.msecs):03d}"


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setup_logging(level: str | None = None, *, per_loop_turn: bool = False) -> None:
    """Send every log record to stderr; with `per_loop_turn`, one write per event loop turn."""
    requested = os.environ.get("TAPGATE_LOG_LEVEL") or level or "INFO"
    chosen = requested.upper()
    if chosen not in _LEVELS:
        raise ConfigError(
            f"TAPGATE_LOG_LEVEL: unknown level {requested!r}; use one of "
            + ", ".join(name.lower() for name in _LEVELS)
        )
    handler = _LoopTurnHandler() if per_loop_turn else _StderrHandler()
    handler.setFormatter(_Formatter())
    # The format uses none of the caller's file, thread or process, so the logging module need
    # not look them up for every record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen)
    # Per-request access lines from uvicorn would repeat what the audit log records.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
