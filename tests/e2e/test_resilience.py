"""Restarts, simultaneous answers and the live device stream."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapgate.authenticator.device import (
    fetch_challenges,
    request_header,
    send_answer,
    stream_events,
)
from tests.e2e.conftest import PASSWORD, enroll_device, state_file
from tests.support import TAPGATE, Api, Server, cli_env


def test_restart_while_pending_still_resolves(server: Server) -> None:
    phone = enroll_device(server, "ayşe")
    api = Api(server, "portal")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]

    assert server.stop() == 0
    server.start()
    challenge = fetch_challenges(phone)[0]
    assert challenge["transaction_id"] == transaction_id
    assert send_answer(phone, challenge, "approve", number=None, uv=False)["accepted"] is True
    assert api.status(transaction_id, wait=5)["status"] == "approved"


def test_sigterm_stops_cleanly(server: Server) -> None:
    assert server.stop() == 0
    assert "http stopped" in server.log()


DECISIONS = ("approve", "deny", "approve", "deny")


def test_simultaneous_answers_resolve_once(server: Server) -> None:
    phones = [enroll_device(server, "berk", f"Cihaz {i}") for i in range(4)]
    api = Api(server, "portal")
    for _ in range(3):
        transaction_id = api.login("berk", PASSWORD).json()["transaction_id"]
        challenges = [fetch_challenges(p)[0] for p in phones]
        barrier = threading.Barrier(len(phones))

        def answer(
            index: int,
            barrier: threading.Barrier = barrier,
            challenges: list[dict[str, Any]] = challenges,
        ) -> dict[str, Any]:
            barrier.wait()
            return send_answer(
                phones[index], challenges[index], DECISIONS[index], number=None, uv=False
            )

        with ThreadPoolExecutor(len(phones)) as pool:
            results = list(pool.map(answer, range(len(phones))))
        winners = [r for r in results if r["accepted"]]
        assert len(winners) == 1
        final = api.status(transaction_id)["status"]
        assert final == winners[0]["status"]
        records = server.cli_json("audit", "--user", "berk", "--event", "decision", "--json")
        accepted = [
            r
            for r in records
            if r["transaction_id"] == transaction_id and r["outcome"] != "ignored"
        ]
        assert len(accepted) == 1


def test_new_login_cancels_older_pending(server: Server) -> None:
    enroll_device(server, "ayşe")
    api = Api(server, "portal-kod")
    first = api.login("ayşe", PASSWORD).json()["transaction_id"]
    second = api.login("ayşe", PASSWORD).json()["transaction_id"]
    assert api.status(first)["status"] == "canceled"
    assert api.status(second)["status"] == "pending"


def test_stream_delivers_challenge_and_closed(server: Server) -> None:
    phone = enroll_device(server, "ayşe", "Telefon")
    tablet = enroll_device(server, "ayşe", "Tablet")
    api = Api(server, "portal")
    events: list[dict[str, Any]] = []
    connected = threading.Event()

    def listen() -> None:
        for event in stream_events(phone):
            events.append(event)
            connected.set()
            if event.get("event") == "closed":
                return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    assert connected.wait(10)
    send_answer(tablet, fetch_challenges(tablet)[0], "approve", number=None, uv=False)
    thread.join(10)
    kinds = [
        (e["event"], e.get("transaction_id") or e["message"]["transaction_id"]) for e in events
    ]
    assert ("challenge", transaction_id) in kinds
    assert ("closed", transaction_id) in kinds


def test_stream_closes_canceled_login_before_next_challenge(server: Server) -> None:
    """With one open push a user, each new login cancels the last. The device receives that
    before the new challenge, so it never has two open challenges."""
    phone = enroll_device(server, "ayşe", "Telefon")
    api = Api(server, "portal-kod")
    events: list[tuple[str, str]] = []

    def listen() -> None:
        for event in stream_events(phone):
            if event.get("event") == "challenge":
                events.append(("challenge", event["message"]["transaction_id"]))
            elif event.get("event") == "closed":
                events.append(("closed", event["transaction_id"]))
            if len(events) >= 5:
                return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(1.0)  # the stream connects
    logins = [api.login("ayşe", PASSWORD).json()["transaction_id"] for _ in range(3)]
    thread.join(10)
    first, second, third = logins
    assert events == [
        ("challenge", first),
        ("closed", first),
        ("challenge", second),
        ("closed", second),
        ("challenge", third),
    ]


def test_closed_stream_leaves_the_hub(server: Server) -> None:
    phone = enroll_device(server, "İsmail", "Telefon")
    path = "/device/v1/stream"
    with httpx.stream(
        "GET",
        phone.public_url + path,
        headers={"Authorization": request_header(phone, "GET", path)},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        assert next(response.iter_lines()) == ": connected"
    # The device hung up; the server notices and stops sending to that stream.
    disconnected = f"device disconnected device={phone.device_id}"
    deadline = time.monotonic() + 10
    while disconnected not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert disconnected in server.log()


def test_listen_process_approves(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "berk", tmp_path)
    api = Api(server, "portal")
    listener = subprocess.Popen(
        [*TAPGATE, "authenticator", "listen", "--state", str(phone), "--approve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        time.sleep(1.5)
        transaction_id = api.login("berk", PASSWORD).json()["transaction_id"]
        assert api.status(transaction_id, wait=10)["status"] == "approved"
    finally:
        listener.terminate()
        _, stderr = listener.communicate(timeout=10)
    assert "without asking" in stderr


def test_listen_skips_login_canceled_at_prompt(server: Server, tmp_path: Path) -> None:
    """A newer login cancels the one whose prompt is open. `listen` reports it at once, sends
    nothing for it, and the next choice typed goes to the newer login."""
    phone = state_file(server, "ayşe", tmp_path)
    api = Api(server, "portal-kod")
    listener = subprocess.Popen(
        [*TAPGATE, "authenticator", "listen", "--state", str(phone)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert listener.stdin is not None and listener.stderr is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(listener.stderr or ()), daemon=True)
    reader.start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 15
        while not any(text in line for line in list(seen)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(text in line for line in list(seen)), "".join(seen)

    try:
        wait_for("listening for login requests")
        time.sleep(1.0)  # the stream connects after the first line
        first = api.login("ayşe", PASSWORD).json()["transaction_id"]
        wait_for(first)
        second = api.login("ayşe", PASSWORD).json()["transaction_id"]
        wait_for(f"transaction {first} is canceled")
        listener.stdin.write("approve\n")
        listener.stdin.flush()
        wait_for(f"not sent: transaction {first} is canceled")
        wait_for(second)
        listener.stdin.write("approve\n")
        listener.stdin.flush()
        deadline = time.monotonic() + 15
        while not _decided(server, second) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        listener.terminate()
        stdout, _ = listener.communicate(timeout=10)
    assert f"approve: transaction {second} is pending" in stdout
    assert first not in stdout
    assert api.status(first)["status"] == "canceled"
    rejected = server.cli_json("audit", "--user", "ayşe", "--event", "answer_rejected", "--json")
    assert rejected == []


def _decided(server: Server, transaction_id: str) -> bool:
    decisions = server.cli_json("audit", "--event", "decision", "--json")
    return any(record.get("transaction_id") == transaction_id for record in decisions)


def test_port_in_use_stops_serve_with_nothing_written(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**cli_env(), "TAPGATE_LISTEN": f"127.0.0.1:{port}"}
        result = subprocess.run(
            [*TAPGATE, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "TAPGATE_LISTEN=127.0.0.1:PORT" in result.stderr
    assert "http started" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def _terminate_backends(database_url: str) -> int:
    """End every other connection to the server's database; return how many there were."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
        ended = [row[0] for row in rows]
        # Wait until the backends have exited, so that their sockets are closed.
        for _ in range(500):
            left = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [ended]
            ).fetchone()
            if left is not None and left[0] == 0:
                break
            time.sleep(0.01)
    return len(ended)


def test_terminated_connections_replaced(server: Server) -> None:
    if not server.database.startswith("postgresql"):
        pytest.skip("SQLite has no server that can end connections")
    phone = enroll_device(server, "ayşe", "Telefon 2")
    api = Api(server, "portal")
    for round_number in range(3):
        response = api.login("ayşe", PASSWORD)
        assert response.status_code == 202, response.text
        transaction_id = response.json()["transaction_id"]
        challenge = fetch_challenges(phone)[0]
        assert send_answer(phone, challenge, "approve", number=None, uv=False)["accepted"]
        assert api.status(transaction_id, wait=5)["status"] == "approved"
        ended = _terminate_backends(server.database)
        assert ended > 0, f"round {round_number}: no connection to end"
    assert "Traceback" not in server.log()
