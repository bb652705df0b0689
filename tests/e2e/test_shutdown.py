"""Stopping the server while devices hold their streams and logins wait for their checks."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tapgate.authenticator.device import stream_events
from tests.e2e.conftest import OBJECTS, PASSWORD, enroll_device
from tests.support import Api, Server


def test_sigterm_with_open_streams_is_clean(server: Server) -> None:
    phones = [enroll_device(server, "ayşe", f"Telefon {i}") for i in range(3)]

    def hold(index: int) -> None:
        try:
            for _event in stream_events(phones[index]):
                pass
        except Exception:  # the stream ends when the server stops, as a reconnect would see
            pass

    threads = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(len(phones))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 15
    while server.log().count("device connected") < len(phones) and time.monotonic() < deadline:
        time.sleep(0.1)

    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 3
    assert "Traceback" not in server.log()
    assert "CancelledError" not in server.log()


def test_sigterm_answers_held_status_waits(server: Server) -> None:
    enroll_device(server, "ayşe", "Telefon")
    api = Api(server, "portal")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    answers: list[dict[str, object]] = []

    def wait_for_decision() -> None:
        answers.append(api.status(transaction_id, wait=30))

    waiter = threading.Thread(target=wait_for_decision, daemon=True)
    waiter.start()
    # The request has no log line of its own; a second is ample for it to reach the wait.
    time.sleep(1.0)

    started = time.monotonic()
    assert server.stop() == 0
    waiter.join(timeout=5)
    assert time.monotonic() - started < 3
    assert answers == [answers[0]]
    assert answers[0]["status"] == "pending"
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM,), (signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGINT)],
    ids=["term", "term-int", "int-int"],
)
def test_sigterm_rejects_queued_checks(
    tmp_path: Path, db_url: str, signals: tuple[signal.Signals, ...]
) -> None:
    """Checks waiting for a hashing slot end as directory_unavailable instead of a 500, also
    when a second signal follows (uvicorn itself would then cancel every request)."""
    server = Server(tmp_path, db_url, password_hash="default")
    server.start()

    try:
        server.apply(OBJECTS)
        api = Api(server, "portal")

        # Unknown names still cost one production hash each (about 0.2 s of a core), so these
        # logins need several seconds of hashing, more than the 3 s grace period.
        names = [f"bilinmeyen-ışık-{index}" for index in range(60)]
        with ThreadPoolExecutor(len(names)) as pool:
            replies = [
                pool.submit(api.login, name, "Yanlış-Parola-1", client_ip=f"85.105.{index}.7")
                for index, name in enumerate(names)
            ]
            # Two seconds for the server to read every request: on PostgreSQL, under a busy
            # test run, one second was not always enough. About a third of the hashes are done
            # by then, so most checks are still queued when the signal comes.
            time.sleep(2.0)

            started = time.monotonic()
            assert server.process is not None
            for number in signals:
                server.process.send_signal(number)
                time.sleep(0.05)
            assert server.process.wait(timeout=15) == 0
            stopped_in = time.monotonic() - started

            responses = []
            for reply in replies:
                # A connection the server had not accepted before its listener closed is refused
                # or reset, and no login started on it.
                with contextlib.suppress(httpx.TransportError):
                    responses.append(reply.result(timeout=15))
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop(signal.SIGKILL)

    assert stopped_in < 3
    assert len(responses) >= 40, f"{len(responses)} of {len(names)} logins got a reply"
    reasons = Counter(
        (response.status_code, response.json().get("reason")) for response in responses
    )
    assert set(reasons) <= {(200, "invalid_credentials"), (200, "directory_unavailable")}, reasons
    assert reasons[(200, "directory_unavailable")] > 0

    log = server.log()
    assert "Traceback" not in log
    assert "directory unavailable application=portal" in log
    if db_url.startswith("sqlite"):
        # Only the passwords that were checked stay counted.
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as connection:
            (counted,) = connection.execute(
                "SELECT count(*) FROM rate_events WHERE kind = 'fail_user'"
            ).fetchone()
        assert counted == reasons[(200, "invalid_credentials")]


def _hash_workers(parent: int) -> list[int]:
    """Return the pids of `parent`'s children that run the password hashing worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text(encoding="utf-8")
            command = (entry / "cmdline").read_bytes()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"hash_worker" in command:
                found.append(int(entry.name))
    return found


def test_sigterm_ends_hash_workers(server: Server) -> None:
    assert server.process is not None
    workers = _hash_workers(server.process.pid)
    assert len(workers) >= 1
    enroll_device(server, "ayşe", "Telefon")
    api = Api(server, "portal")
    assert api.login("ayşe", "yanlış-parola").json()["reason"] == "invalid_credentials"
    assert api.login("ayşe", PASSWORD).json()["status"] == "pending"

    assert server.stop() == 0

    assert _hash_workers(server.process.pid) == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert "password hashing workers started" in server.log()
    assert "password hashing workers stopped" in server.log()
    assert "Traceback" not in server.log()
