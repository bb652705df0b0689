"""`tapgate serve` and `tapgate db upgrade`."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import IO

import click
import uvicorn

from tapgate.cli.common import config_option, handle_errors
from tapgate.errors import ConfigError
from tapgate.logsetup import setup_logging
from tapgate.settings import HostPort, load_settings
from tapgate.store.migrate import upgrade

log = logging.getLogger("tapgate.serve")

_YOUNG_COLLECTION_OBJECTS = 20_000
# How long a shutdown lets requests being handled finish, over HTTP and over RADIUS.
_GRACE_SECONDS = 3


@click.command()
@config_option
@handle_errors
def serve(config_file: str | None) -> None:
    """Run the HTTP server (and RADIUS when configured) until SIGTERM."""
    setup_logging(per_loop_turn=True)
    settings = load_settings(config_file)
    for warning in settings.warnings:
        log.warning("%s", warning)
    log.info("retention %s", settings.retention.describe())
    # Bound before anything is created, so a port in use stops `serve` with nothing written.
    listener = _listening_socket(settings.listen)
    try:
        before, after = upgrade(settings.database_url)
        if before != after:
            log.info("schema migrated from=%s to=%s", before, after)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(settings, listener))
    finally:
        listener.close()


def _listening_socket(listen: HostPort) -> socket.socket:
    """Return a socket bound to `listen`, or raise ConfigError naming the address and the fix."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {listen}: {exc}; set server.listen in the config file or "
            "TAPGATE_LISTEN to an address of this host, such as 127.0.0.1:8080"
        ) from exc
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as exc:
        listener.close()
        log.warning("listen failed address=%s error=%s", listen, exc)
        raise ConfigError(
            f"cannot listen on {listen}: {exc.strerror or exc}; stop the process that uses "
            "it, or choose another port with server.listen in the config file or "
            f"TAPGATE_LISTEN={listen.host}:PORT"
        ) from exc
    return listener


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (uvicorn[standard] brings it on Linux and macOS).

    Every request, stream write and wake-up passes through the loop: measured here, a minimal
    request through uvicorn took 117 µs of server CPU on asyncio's own loop and 60 µs on uvloop.
    """
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed; using asyncio's event loop")
        return None
    return uvloop.new_event_loop


async def _serve(settings: object, listener: socket.socket) -> None:
    from tapgate.api.app import create_server_app
    from tapgate.api.header_deadline import header_deadline_protocol
    from tapgate.bootstrap import create_embedded_defaults
    from tapgate.directory.passwords import (
        start_hash_pool,
        stop_hash_pool,
        stop_password_checks,
    )
    from tapgate.runtime import Runtime
    from tapgate.settings import Settings

    assert isinstance(settings, Settings)
    lock = _lock_sqlite(settings.database_url)
    runtime = Runtime.build(settings)
    if settings.embedded:
        await create_embedded_defaults(runtime)
    elif not (await runtime.objects.current()).objects.applications:
        log.warning(
            "no applications configured; declare them in a file and load it with "
            "tapgate apply FILE --config %s",
            settings.source,
        )
    radius_server = None
    if settings.radius_listen is not None:
        from tapgate.radius_bridge import start_radius

        radius_server = await start_radius(runtime)
        # Stopped before the database closes, so its requests can still record their outcome.
        runtime.close_first(radius_server.stop)
    app = create_server_app(runtime)
    config = uvicorn.Config(
        app,
        # Closes connections whose request headers do not arrive in time.
        http=header_deadline_protocol(),
        host=settings.listen.host,
        port=settings.listen.port,
        log_config=None,
        access_log=False,
        # Forwarded headers count only from server.trusted_proxies, which tapgate checks itself.
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=_GRACE_SECONDS,
    )
    loop = asyncio.get_running_loop()
    _tune_garbage_collector()

    def stop() -> None:
        # Queued password checks fail now rather than wait for a slot past the grace period.
        stop_password_checks()
        # Device streams never end by themselves; ending them lets uvicorn's graceful shutdown
        # finish instead of cancelling them after its timeout.
        runtime.hub.close_all()
        # Held status requests return now instead of being cancelled when the graceful
        # shutdown's timeout runs out.
        runtime.bus.close()
        if radius_server is not None:
            # The same grace as HTTP's: requests being handled get their replies.
            radius_server.begin_drain(_GRACE_SECONDS)
        server.should_exit = True

    server = _GracefulServer(config, on_signal=stop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    await start_hash_pool()
    try:
        await server.serve(sockets=[listener])
    finally:
        if radius_server is not None:
            await radius_server.stop()
        # After the last request, so that no password check loses its worker.
        await stop_hash_pool()
        if lock is not None:
            lock.close()
    if not server.started:
        raise ConfigError(
            f"could not listen on {settings.listen}; is another process using the port?"
        )


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a second signal does not force the exit.

    On a second SIGINT uvicorn cancels every request at once. The first signal's `stop` has
    already ended the held streams and status waits and rejected the queued password checks, so
    what remains ends within the 3 s grace period. Forcing the exit only turned those clean
    rejections into 500s and skipped the release of failed-password counters.
    """

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            log.info(
                "signal received during shutdown signal=%d; the grace period is %d s",
                sig,
                _GRACE_SECONDS,
            )
        # uvicorn replaces the event loop's signal handlers while it serves; `stop` may then
        # run twice, which it allows.
        self._on_signal()


def _tune_garbage_collector() -> None:
    """Keep the objects of start-up out of every later garbage collection, and collect young
    objects less often.

    The modules, models and objects loaded so far live as long as the process. A full
    collection walks every tracked object. With 1,000 connected devices each one took 77 to
    238 ms on the benchmark machine, about every 10 s under load, and the event loop stood
    still meanwhile. That was most of the p99 latency at light load. Frozen objects are not
    walked, and cyclic garbage created later is still collected.
    """
    gc.collect()
    gc.freeze()
    # A login's objects live for milliseconds. Collected every 700 new objects (Python's
    # default), many were still alive, survived into older generations and made collections
    # of those more frequent. With 20,000 the young collections are rarer and find them dead:
    # at 200 concurrent logins with a 0.15 s think time, time spent collecting fell from
    # 645 to 100 ms a run. In four pairs of runs the throughput was 2 to 6 % higher and both
    # p99 latency shares were lower in every pair. Young collections took at most 11 ms.
    gc.set_threshold(_YOUNG_COLLECTION_OBJECTS, *gc.get_threshold()[1:])
    log.debug("froze start-up objects count=%d", gc.get_freeze_count())


def _lock_sqlite(database_url: str) -> IO[str] | None:
    """Refuse a second `serve` on the same SQLite file: two processes would each keep their
    own device streams and wake-ups, so pushes would reach only half the devices. Returns the
    open lock file, which must stay open while the server runs."""
    import fcntl

    from tapgate.store.database import parse_database_url

    path = parse_database_url(database_url).sqlite_path
    if path is None:
        return None
    handle = open(path.with_name(path.name + ".serve-lock"), "a+")  # noqa: SIM115 - held open
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another tapgate serve is already using {path.resolve()}; stop it first, or use "
            "PostgreSQL to run several nodes"
        ) from None
    return handle


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@config_option
@handle_errors
def db_upgrade(config_file: str | None) -> None:
    """Apply pending schema migrations (safe when several nodes run it at once)."""
    settings = load_settings(config_file)
    before, after = upgrade(settings.database_url)
    click.echo(
        f"schema at {after}" + (f" (was {before})" if before != after else " (already current)")
    )
