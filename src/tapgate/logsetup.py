"""Logging to standard error through the standard library: one line per event, key=value fields."""

from __future__ import annotations

import logging
import os
import sys


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A handler that writes to whatever `sys.stderr` is now, so a replaced stderr is followed."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(level: str | None = None) -> None:
    chosen = (os.environ.get("TAPGATE_LOG_LEVEL") or level or "INFO").upper()
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
