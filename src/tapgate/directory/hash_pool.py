"""Argon2id checks and hashes in child processes, for `tapgate serve`.

argon2-cffi releases the GIL while it hashes, but a hashing thread must take the GIL back to
hand over its result, and the event loop is blocked until the thread releases it again. With a
cheap hash, hundreds of such handovers a second slowed every other request. In one pair of
`tapgate bench --hash fast` runs (2 cores, K=10) the server completed 706 logins a second with
threads and 789 with this pool. The standard library's `ProcessPoolExecutor` would not help: it collects results on a
thread of the server, which needs the GIL in the same way. Here the event loop reads the
children's pipes itself.

Each child runs `tapgate.directory.hash_worker`, which writes one JSON reply line a request, in
order. Requests may queue in a child's pipe, so a busy child can start its next hash without
waiting for the server's next turn. A child that exits fails its queued requests with
`DirectoryUnavailable`, and the next request starts a new one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import deque
from typing import Any, cast

from tapgate.directory.hash_worker import READY
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret

log = logging.getLogger("tapgate.hash_pool")

# Importing argon2 and making the timing hash with the production profile takes well under
# a second; far longer means the child cannot start.
_START_SECONDS = 30.0
_CLOSE_SECONDS = 5.0
# A check takes well under a second even with the production profile and a full queue (the
# callers' gate admits a few a core), so a child silent this long is stuck.
_REPLY_SECONDS = 60.0


class _Worker(asyncio.SubprocessProtocol):
    """One child process: its pipes, and the requests still waiting for a reply, oldest first."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.SubprocessTransport | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self._buffer = bytearray()

    @property
    def pid(self) -> int | None:
        return self.transport.get_pid() if self.transport is not None else None

    @property
    def alive(self) -> bool:
        return self.ready.done() and not self.exited.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport has the interface but not the base class.
        self.transport = cast(asyncio.SubprocessTransport, transport)

    def send(self, request: list[Any]) -> asyncio.Future[Any]:
        assert self.transport is not None
        stdin = cast(asyncio.WriteTransport, self.transport.get_pipe_transport(0))
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(reply)
        stdin.write(json.dumps(request).encode() + b"\n")
        return reply

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line_received(line)

    def _line_received(self, line: bytes) -> None:
        try:
            reply = json.loads(line)
        except ValueError:
            reply = ["error", "the hashing worker wrote a line that is not JSON"]
        if not self.ready.done():
            if reply == [READY]:
                self.ready.set_result(None)
            else:
                self.ready.set_exception(
                    DirectoryUnavailable(f"the hashing worker did not start: {reply!r}")
                )
            return
        if not self.waiting:
            log.warning("hashing worker replied with no request waiting pid=%s", self.pid)
            return
        request = self.waiting.popleft()
        # A request whose caller was cancelled still gets its reply, which keeps the order.
        if not request.done():
            request.set_result(reply)

    def process_exited(self) -> None:
        code = self.transport.get_returncode() if self.transport is not None else None
        error = DirectoryUnavailable(f"the password hashing worker exited with code {code}")
        if not self.ready.done():
            self.ready.set_exception(error)
        while self.waiting:
            request = self.waiting.popleft()
            if not request.done():
                request.set_exception(error)
        if not self.exited.done():
            self.exited.set_result(None)


class HashPool:
    """Child processes that check and make Argon2id hashes with one set of parameters."""

    def __init__(self, size: int, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._size = max(1, size)
        self._arguments = [str(time_cost), str(memory_cost), str(parallelism)]
        self._workers: list[_Worker] = []
        self._starting: asyncio.Task[_Worker] | None = None
        self._closed = False

    async def start(self) -> None:
        """Start every child; raise `DirectoryUnavailable` when one cannot start."""
        missing = self._size - len(self._workers)
        started = await asyncio.gather(
            *(self._spawn() for _ in range(missing)), return_exceptions=True
        )
        # Kept even when another failed, so that `close` ends them.
        self._workers += [worker for worker in started if isinstance(worker, _Worker)]
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        log.info(
            "password hashing workers started count=%d pids=%s",
            len(self._workers),
            ",".join(str(worker.pid) for worker in self._workers),
        )

    async def verify(self, stored: str | None, password: Secret) -> bool:
        """Check `password` against `stored`; with no stored hash, spend the same time and fail."""
        reply = await self._request(["verify", stored, password.reveal()])
        if reply[0] != "ok" or not isinstance(reply[1], bool):
            raise DirectoryUnavailable(f"the password check failed in its worker: {reply[-1]}")
        return reply[1]

    async def hash(self, password: Secret) -> str:
        reply = await self._request(["hash", password.reveal()])
        if reply[0] != "ok" or not isinstance(reply[1], str):
            raise ValueError(f"the password could not be hashed: {reply[-1]}")
        return reply[1]

    async def close(self) -> None:
        """End every child: close its stdin, then kill it if it has not exited in 5 s."""
        self._closed = True
        workers, self._workers = self._workers, []
        await asyncio.gather(*(_end(worker) for worker in workers))
        log.info("password hashing workers stopped count=%d", len(workers))

    async def _request(self, request: list[Any]) -> list[Any]:
        worker = await self._least_busy()
        try:
            reply_future = worker.send(request)
        except (OSError, RuntimeError) as exc:  # the pipe closed as the child exited
            log.warning("password hashing worker pipe failed pid=%s error=%s", worker.pid, exc)
            raise DirectoryUnavailable(f"the password hashing worker failed: {exc}") from exc
        timer = asyncio.get_running_loop().call_later(
            _REPLY_SECONDS, _time_out, worker, reply_future
        )
        try:
            reply = await reply_future
        finally:
            timer.cancel()
        if not isinstance(reply, list) or len(reply) != 2:
            raise DirectoryUnavailable("the password hashing worker sent an invalid reply")
        return reply

    async def _least_busy(self) -> _Worker:
        if self._closed:
            raise DirectoryUnavailable("the password hashing workers are stopped")
        if sum(worker.alive for worker in self._workers) < self._size:
            await self._replace_exited()
        # Read after the wait, in which another child may have exited.
        live = [worker for worker in self._workers if worker.alive]
        if not live:
            raise DirectoryUnavailable("no password hashing worker is running")
        return min(live, key=lambda worker: len(worker.waiting))

    async def _replace_exited(self) -> _Worker:
        # One start at a time: requests that find a child missing wait for the same start. The
        # start runs as a task of its own, so a cancelled request does not orphan its child.
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start_replacement())
            self._starting.add_done_callback(_consume_error)
        return await asyncio.shield(self._starting)

    async def _start_replacement(self) -> _Worker:
        worker = await self._spawn()
        if self._closed:
            await _end(worker)
            raise DirectoryUnavailable("the password hashing workers are stopped")
        exited = [old for old in self._workers if not old.alive]
        for old in exited:
            self._workers.remove(old)
            if old.transport is not None:
                old.transport.close()
        self._workers.append(worker)
        log.warning("password hashing worker replaced pid=%s replaced=%d", worker.pid, len(exited))
        return worker

    async def _spawn(self) -> _Worker:
        loop = asyncio.get_running_loop()
        try:
            _, worker = await loop.subprocess_exec(
                _Worker,
                sys.executable,
                "-m",
                "tapgate.directory.hash_worker",
                *self._arguments,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,
            )
        except OSError as exc:
            log.error("password hashing worker did not start error=%s", exc)
            raise DirectoryUnavailable(f"the password hashing worker did not start: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), _START_SECONDS)
        except TimeoutError:
            assert worker.transport is not None
            worker.transport.kill()
            log.error("password hashing worker did not start in time pid=%s", worker.pid)
            raise DirectoryUnavailable(
                f"the password hashing worker did not start within {_START_SECONDS:.0f} s"
            ) from None
        except DirectoryUnavailable as exc:
            log.error("password hashing worker did not start pid=%s error=%s", worker.pid, exc)
            raise
        return worker


def _time_out(worker: _Worker, reply: asyncio.Future[Any]) -> None:
    """Fail a request that a child did not reply to in time, and kill the child as stuck."""
    if reply.done():
        return
    log.error(
        "password hashing worker did not reply within %.0f s; killing it pid=%s",
        _REPLY_SECONDS,
        worker.pid,
    )
    reply.set_exception(
        DirectoryUnavailable(f"the password check timed out after {_REPLY_SECONDS:.0f} s")
    )
    if worker.transport is not None and not worker.exited.done():
        worker.transport.kill()


def _consume_error(task: asyncio.Future[Any]) -> None:
    # Every request that waited on the start has raised its error already.
    if not task.cancelled():
        task.exception()


async def _end(worker: _Worker) -> None:
    if worker.transport is None:
        return
    stdin = worker.transport.get_pipe_transport(0)
    if stdin is not None:
        stdin.close()
    try:
        await asyncio.wait_for(asyncio.shield(worker.exited), _CLOSE_SECONDS)
    except TimeoutError:
        log.warning("password hashing worker did not exit; killing it pid=%s", worker.pid)
        worker.transport.kill()
        await worker.exited
    worker.transport.close()
