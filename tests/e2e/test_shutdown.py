"""Stopping the server while devices hold their streams."""

from __future__ import annotations

import threading
import time

from tapgate.authenticator.device import stream_events
from tests.e2e.conftest import PASSWORD, enroll_device
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
