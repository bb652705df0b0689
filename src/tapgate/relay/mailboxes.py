"""Device mailboxes: who may listen on an address and which server may send to it.

A mailbox belongs to exactly one server (the one whose public_url the device named when it
created the mailbox), so a server can neither send to nor receive answers from another
server's devices. The file stores only ids, the SHA-256 of each mailbox token and the device's
push wake-up addresses: never a challenge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_MAILBOXES = 100_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Mailbox:
    address: str
    server_id: str
    token_sha256: str
    created_at: float
    # Push addresses the relay may use to wake the device: {"webpush": subscription, ...}.
    wake: dict[str, Any] = field(default_factory=dict)

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token_hash(token), self.token_sha256)


class MailboxStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mailboxes: dict[str, Mailbox] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                self.mailboxes = {item["address"]: Mailbox(**item) for item in raw["mailboxes"]}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise RuntimeError(f"relay state file {path} is unreadable: {exc}") from exc
        log.info("mailboxes loaded count=%d path=%s", len(self.mailboxes), path)

    def create(self, server_id: str, wake: dict[str, Any]) -> tuple[Mailbox, str]:
        """Create a mailbox; return it with its listening token (shown to the device once)."""
        if len(self.mailboxes) >= MAX_MAILBOXES:
            raise OverflowError(
                f"mailbox limit of {MAX_MAILBOXES} reached; delete unused mailboxes from the state file"
            )
        token = secrets.token_urlsafe(32)
        mailbox = Mailbox(
            secrets.token_urlsafe(16), server_id, token_hash(token), time.time(), wake
        )
        self.mailboxes[mailbox.address] = mailbox
        self.save()
        return mailbox, token

    def delete(self, address: str) -> None:
        if self.mailboxes.pop(address, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the file atomically through a 0600 temporary file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".relay-state-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"mailboxes": [asdict(m) for m in self.mailboxes.values()]}, handle)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
