"""WAL checkpoints on a thread of their own, away from the event loop.

By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages, on the
connection that commits. For `write_rows()` that is the connection of the group commit, and
under load those commits then took up to 13 ms instead of 0.45 ms (the benchmark at K=200 on
the machine in docs/benchmarks.md). `Checkpointer` runs a PASSIVE checkpoint on its own
connection and thread instead, at most once per `interval` seconds and only after commits.
A PASSIVE checkpoint waits for no reader or writer, and sqlite3 releases the GIL while it
copies pages, so the copying runs on another core while the event loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)

# The writer's own automatic checkpoint stays as a backstop, for when this thread falls behind;
# 20,000 pages are about 80 MB of WAL.
BACKSTOP_PAGES = 20_000


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection], interval: float = 1.0) -> None:
        self._connect = connect
        self._interval = interval
        self._connection: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None
        self._last = time.monotonic()

    def after_commit(self) -> None:
        """Start a checkpoint if none runs and the last one is `interval` seconds old."""
        if self._running is not None and not self._running.done():
            return
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tapgate-checkpoint")
        self._running = self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._connection is None:
                self._connection = self._connect()
            busy, pages, copied = self._connection.execute(
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).fetchone()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed error=%s", exc)
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return
        log.debug("WAL checkpoint busy=%d wal_pages=%d copied_pages=%d", busy, pages, copied)

    async def close(self) -> None:
        """Wait for a running checkpoint, then close the thread and the connection."""
        running = self._running
        if running is not None and not running.done():
            await asyncio.wrap_future(running)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
