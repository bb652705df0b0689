"""`tapgate authenticator`: the reference authenticator, the device side of the protocol."""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import httpx

from tapgate.authenticator.device import (
    ProtocolError,
    fetch_challenges,
    send_answer,
    send_receipt,
    split_enrollment_url,
    stream_events,
)
from tapgate.authenticator.device import (
    enroll as enroll_device,
)
from tapgate.authenticator.state import DeviceState, create_state, load_state, save_state
from tapgate.cli.common import fail, handle_errors, read_stdin_line
from tapgate.directory.passwords import _hasher
from tapgate.errors import ObjectError

log = logging.getLogger("tapgate.authenticator")
state_option = click.option(
    "--state",
    "state_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="State file with this device's keys (created with mode 0600).",
)
config_ignored = click.option(
    "--config",
    "config_file",
    default=None,
    hidden=True,
    help="Accepted for symmetry; the authenticator reads only its state file.",
)
PENDING_FIELDS = (
    "transaction_id",
    "application",
    "username",
    "client_ip",
    "location",
    "user_agent",
    "created_at",
    "expires_at",
    "verification",
    "number_digits",
    "require_user_verification",
)


@click.group()
def authenticator() -> None:
    """Run the reference authenticator, the device side a phone app implements."""


@authenticator.command("enroll")
@click.argument("url")
@state_option
@click.option(
    "--name", default="tapgate CLI", show_default=True, help="Device name shown to the user."
)
@click.option(
    "--relay",
    "relay_url",
    default=None,
    help="Receive challenges through this tapgate relay (https URL) instead of a direct stream.",
)
@click.option(
    "--pin-stdin",
    is_flag=True,
    help="Read a local PIN from standard input, asked before approvals that need user verification.",
)
@config_ignored
@handle_errors
def enroll(
    url: str,
    state_file: str,
    name: str,
    relay_url: str | None,
    pin_stdin: bool,
    config_file: str | None,
) -> None:
    """Enroll this authenticator with an enrollment URL."""
    path = Path(state_file)
    if path.exists():
        fail(f"state file {path} already exists; pick another path or delete it first")
    pin_hash = None
    if pin_stdin:
        pin = read_stdin_line("the PIN").strip()
        if len(pin) < 4:
            fail("the PIN must have at least 4 characters")
        pin_hash = _hasher.hash(pin)
    try:
        state = enroll_device(url, name, relay_url=relay_url)
    except (ProtocolError, httpx.HTTPError) as exc:
        fail(_problem(exc, split_enrollment_url(url)[0]))
        return
    state.pin_hash = pin_hash
    create_state(path, state)
    click.echo(f"enrolled device {state.device_id} for {state.username} at {state.public_url}")
    if state.confirmation_code:
        click.echo(f"confirmation code: {state.confirmation_code}")


def _problem(exc: Exception, public_url: str) -> str:
    """Return the message for a failed request, naming the server when it was unreachable."""
    if isinstance(exc, httpx.TransportError):
        return (
            f"cannot reach the tapgate server at {public_url} ({str(exc) or type(exc).__name__}); "
            "check that `tapgate serve` runs there and that its public_url names this host and "
            "port. A link from `tapgate enroll` carries the address of the settings that command "
            "ran with, so issue it with the same TAPGATE_LISTEN or TAPGATE_PUBLIC_URL as the "
            "server. A device keeps the address it enrolled with: after the server's address "
            "changes, enroll the device again"
        )
    return str(exc) or type(exc).__name__


def _row(message: dict[str, Any]) -> dict[str, Any]:
    return {key: message.get(key) for key in PENDING_FIELDS}


@authenticator.command("pending")
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@config_ignored
@handle_errors
def pending(state_file: str, as_json: bool, config_file: str | None) -> None:
    """List open challenges for this device."""
    path = Path(state_file)
    state = load_state(path)
    try:
        challenges = fetch_challenges(state)
    except (ProtocolError, httpx.HTTPError) as exc:
        fail(_problem(exc, state.public_url))
        return
    for message in challenges:
        state.remember(message)
    save_state(path, state)
    if as_json:
        click.echo(json.dumps([_row(m) for m in challenges], ensure_ascii=False))
        return
    if not challenges:
        click.echo("no pending login requests")
    for message in challenges:
        _show(message)


def _show(message: dict[str, Any], err: bool = False, number_from: str = "--number N") -> None:
    """Print a challenge's login context; `listen` prints to standard error, around its prompts.

    `number_from` names where the number goes: the option of `answer`, or `listen`'s prompt.
    """
    verification = message.get("verification")
    lines = [
        f"Login request {message['transaction_id']}",
        f"  application: {message.get('application')}   user: {message.get('username')}",
        f"  time: {message.get('created_at')}   from: {message.get('client_ip')} "
        f"({message.get('location')})",
        f"  browser: {message.get('user_agent') or '-'}   expires: {message.get('expires_at')}",
    ]
    if verification == "number":
        lines.append(f"  approving needs the number shown on the login screen ({number_from})")
    for line in lines:
        click.echo(line, err=err)


def _decision(approve: bool, deny: bool, fraud: bool) -> str | None:
    chosen = [
        name for name, flag in (("approve", approve), ("deny", deny), ("fraud", fraud)) if flag
    ]
    if len(chosen) > 1:
        fail("give only one of --approve, --deny, --fraud")
    return chosen[0] if chosen else None


def _user_verification(state: DeviceState, message: dict[str, Any], decision: str) -> bool:
    """Ask for the local PIN when the challenge needs user verification and we approve."""
    if decision != "approve" or not message.get("require_user_verification"):
        return False
    if state.pin_hash is None:
        click.echo(
            "warning: this login needs a PIN unlock but this authenticator has no PIN", err=True
        )
        return False
    if not sys.stdin.isatty():
        try:
            pin = read_stdin_line("the PIN").strip()
        except ObjectError as exc:
            # One unreadable line must not end `listen`; the login is not approved.
            click.echo(f"error: {exc}", err=True)
            return False
    else:
        pin = click.prompt("PIN", hide_input=True)
    try:
        return bool(_hasher.verify(state.pin_hash, pin))
    except Exception:  # argon2 raises VerifyMismatchError and friends for a wrong PIN
        click.echo("wrong PIN", err=True)
        return False


def _answer(
    state: DeviceState, message: dict[str, Any], decision: str, number: str | None
) -> dict[str, Any]:
    if decision == "approve" and message.get("verification") == "number" and number is None:
        if sys.stdin.isatty():
            number = click.prompt("Number shown on the login screen").strip()
        else:
            # A script drives this command: the number is the next line it writes.
            number = read_stdin_line("the number").strip()
        if not number:
            fail(
                "this login needs the number shown on the login screen; give it with "
                "--number N (answer) or on the next line of standard input"
            )
    uv = _user_verification(state, message, decision)
    return send_answer(
        state, message, decision, number=number if decision == "approve" else None, uv=uv
    )


@authenticator.command("answer")
@state_option
@click.argument("transaction_id")
@click.option("--approve", is_flag=True, help="Approve the login.")
@click.option("--deny", is_flag=True, help="Deny the login.")
@click.option("--fraud", is_flag=True, help="Deny and report the login as not yours.")
@click.option("--number", default=None, help="The number shown on the login screen (number mode).")
@config_ignored
@handle_errors
def answer(
    state_file: str,
    transaction_id: str,
    approve: bool,
    deny: bool,
    fraud: bool,
    number: str | None,
    config_file: str | None,
) -> None:
    """Answer one challenge; in code mode the last line printed is the code to type."""
    decision = _decision(approve, deny, fraud)
    if decision is None:
        fail("give one of --approve, --deny, --fraud")
        return
    path = Path(state_file)
    state = load_state(path)
    try:
        for fetched in fetch_challenges(state):
            state.remember(fetched)
    except (ProtocolError, httpx.HTTPError) as exc:
        # Sending the decision needs the server too, so the connection problem is the one to
        # report.
        fail(_problem(exc, state.public_url))
        return
    save_state(path, state)
    message = state.challenges.get(transaction_id)
    if message is None:
        fail(
            f"transaction {transaction_id} is not pending for this device: it was answered, "
            "canceled by a newer login or has expired, or the id is wrong; "
            "`tapgate authenticator pending` lists the open ones"
        )
        return
    try:
        result = _answer(state, message, decision, number)
    except (ProtocolError, httpx.HTTPError) as exc:
        fail(_problem(exc, state.public_url))
        return
    if not result.get("accepted"):
        fail(f"answer not accepted; the transaction is {result.get('status')}")
    if decision == "approve" and result["status"] == "denied":
        fail(f"the number was wrong, so transaction {transaction_id} is denied; log in again")
    click.echo(f"{decision}: transaction {transaction_id} is {result['status']}")
    if result.get("code"):
        click.echo("Type this code at the login prompt:")
        click.echo(result["code"])


@authenticator.command("listen")
@state_option
@click.option(
    "--approve",
    is_flag=True,
    help="Approve every challenge without asking (scripts and tests). A challenge that needs "
    "the number from the login screen is left pending.",
)
@click.option("--deny", is_flag=True, help="Deny every challenge without asking.")
@click.option("--fraud", is_flag=True, help="Report every challenge as fraud without asking.")
@config_ignored
@handle_errors
def listen(
    state_file: str, approve: bool, deny: bool, fraud: bool, config_file: str | None
) -> None:
    """Hold the device's connection and answer each challenge as it arrives."""
    automatic = _decision(approve, deny, fraud)
    if automatic:
        click.echo(f"warning: answering every challenge with {automatic} without asking", err=True)
    path = Path(state_file)
    state = load_state(path)
    answered: set[str] = set()
    click.echo(f"listening for login requests to {state.username} at {state.public_url}", err=True)
    inbox = _Inbox(state)
    inbox.start()
    while True:
        try:
            message, via = inbox.next_challenge()
        except KeyboardInterrupt:
            return
        transaction_id = message["transaction_id"]
        if transaction_id in answered or inbox.closed_status(transaction_id):
            continue
        try:
            send_receipt(state, message, via)
        except (ProtocolError, httpx.HTTPError) as exc:
            log.warning("receipt not sent transaction=%s error=%s", transaction_id, exc)
        _show(
            message,
            err=True,
            number_from="asked for below" if automatic is None else "not asked for",
        )
        inbox.prompting = transaction_id
        try:
            # click appends the choices to the prompt itself.
            decision = automatic or click.prompt(
                "Decision", type=click.Choice(["approve", "deny", "fraud"])
            )
        except (KeyboardInterrupt, click.Abort):
            return
        finally:
            inbox.prompting = None
        answered.add(transaction_id)
        closed = inbox.closed_status(transaction_id)
        if closed:
            # A newer login of the same user canceled this one while the prompt waited.
            click.echo(f"not sent: transaction {transaction_id} is {closed}", err=True)
            continue
        if decision == "approve" and message.get("verification") == "number" and automatic:
            # Denying would reject a login the person may still approve by hand.
            click.echo(
                f"warning: transaction {transaction_id} needs the number from the login screen, "
                "so --approve cannot answer it; it stays pending. Answer it with: tapgate "
                f"authenticator answer {transaction_id} --approve --number N",
                err=True,
            )
            continue
        try:
            result = _answer(state, message, decision, None)
        except (ProtocolError, httpx.HTTPError) as exc:
            click.echo(f"error: {_problem(exc, state.public_url)}", err=True)
            continue
        click.echo(f"{decision}: transaction {transaction_id} is {result.get('status')}")
        if result.get("code"):
            click.echo(result["code"])


class _Inbox:
    """The device's stream, read on a thread of its own.

    `listen` waits at a prompt for minutes. A newer login of the same user cancels the prompted
    one. Read on the prompt's thread, that event would arrive only after the person had
    answered, and the next choice typed would go to the wrong login.
    """

    def __init__(self, state: DeviceState) -> None:
        self._state = state
        # (challenge, the provider that brought it)
        self._challenges: queue.Queue[tuple[dict[str, Any], str]] = queue.Queue()
        self._closed: dict[str, str] = {}
        self._lock = threading.Lock()
        # The transaction whose prompt is open, so its cancellation is reported at once.
        self.prompting: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._read, name="device-stream", daemon=True).start()

    def next_challenge(self) -> tuple[dict[str, Any], str]:
        while True:
            try:
                return self._challenges.get(timeout=0.5)
            except queue.Empty:
                continue  # a short wait keeps Ctrl-C working on every platform

    def closed_status(self, transaction_id: str) -> str | None:
        with self._lock:
            return self._closed.get(transaction_id)

    def _read(self) -> None:
        delay = 1.0
        while True:
            try:
                for event in stream_events(self._state):
                    delay = 1.0
                    self._take(event)
            except (ProtocolError, httpx.HTTPError, ValueError) as exc:
                log.warning(
                    "stream dropped, reconnecting in %.0f s error=%s",
                    delay,
                    exc or type(exc).__name__,
                )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _take(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "challenge":
            self._challenges.put((event["message"], str(event.get("via", "direct"))))
        elif kind == "closed" and isinstance(event.get("transaction_id"), str):
            transaction_id = event["transaction_id"]
            status = str(event.get("status") or "closed")
            with self._lock:
                self._closed[transaction_id] = status
            if transaction_id == self.prompting:
                click.echo(
                    f"\ntransaction {transaction_id} is {status} (a newer login of the same user "
                    "replaces it, or it ended); type any choice to go on, nothing is sent",
                    err=True,
                )
