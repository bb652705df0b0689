"""The child process of `HashPool`: Argon2id checks and hashes, one request a line.

Usage: python -m tapgate.directory.hash_worker TIME_COST MEMORY_COST_KIB PARALLELISM

Each request on stdin is one line with a JSON array, `["verify", STORED_OR_NULL, PASSWORD]` or
`["hash", PASSWORD]`. Each reply on stdout is one line with a JSON array, in the order of the
requests. It is `["ok", true|false]` for a check, `["ok", HASH]` for a hash, and
`["error", MESSAGE]` when the request is malformed. A check without a stored hash spends the time of a real one and
fails, so an unknown user costs what a known one does. The process ends when stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

READY = "ready"
_NICENESS = 10


def check_password(
    hasher: PasswordHasher, timing_hash: str, stored: str | None, password: str
) -> bool:
    """Return whether `password` matches `stored`; without `stored`, hash against `timing_hash`.

    The server's threads use it as well, so both paths share these rules.
    """
    try:
        # Only a missing hash is replaced: an empty one must fail as invalid, not verify
        # against the timing hash, whose password is in this file.
        return hasher.verify(timing_hash if stored is None else stored, password) and (
            stored is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    except UnicodeEncodeError:
        # A lone surrogate from a JSON escape has no UTF-8 form, so no stored hash can match it.
        return False


def answer(hasher: PasswordHasher, timing_hash: str, line: str) -> list[Any]:
    """Return the reply to one request line; a malformed request gets an error, never a raise."""
    try:
        request = json.loads(line)
    except ValueError:
        return ["error", "request is not JSON"]
    if not isinstance(request, list) or not request:
        return ["error", "request is not a non-empty JSON array"]
    operation = request[0]
    if operation == "verify" and len(request) == 3:
        stored, password = request[1], request[2]
        if (stored is None or isinstance(stored, str)) and isinstance(password, str):
            return ["ok", check_password(hasher, timing_hash, stored, password)]
    elif operation == "hash" and len(request) == 2 and isinstance(request[1], str):
        return ["ok", hasher.hash(request[1])]
    # The request may carry a password, so the message names only the operation.
    return ["error", f"invalid request for operation {str(operation)[:20]!r}"]


def _yield_to_server() -> None:
    """Let the server's event loop run before this process whenever both are ready to run.

    Every request, stream and wake-up of the server waits on one event loop, while a hash can
    wait a little without anyone noticing. On Linux, SCHED_BATCH also keeps a hash that becomes
    ready from preempting the event loop.
    """
    # A sandbox may forbid either call; the hashes are then only less polite, not wrong.
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def main(argv: list[str]) -> int:
    # The server decides when the pool ends, by closing stdin: a Ctrl+C in a terminal or
    # systemd's SIGTERM to the whole group must not end a check that the server still waits for.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _yield_to_server()
    time_cost, memory_cost, parallelism = (int(value) for value in argv)
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    timing_hash = hasher.hash("tapgate-timing-equalizer")
    out = sys.stdout
    out.write(json.dumps([READY]) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            reply = answer(hasher, timing_hash, line)
        except Exception as exc:  # one reply a request keeps the server's replies in step
            reply = ["error", f"{type(exc).__name__} while hashing"]
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
