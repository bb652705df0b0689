"""Stopping the server while devices hold their streams."""

from __future__ import annotations

import threading
import time

from tapgate.authenticator.device import stream_events
from tests.e2e.conftest import enroll_device
from tests.support import Server


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
