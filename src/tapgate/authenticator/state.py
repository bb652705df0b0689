"""The reference authenticator's state file: keys, pinned server key, cached challenges.

Created with mode 0600 by exclusive creation; rewritten atomically through a 0600 temp file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tapgate.errors import ConfigError

# Challenges kept for answering after they closed (so replays reach the server's audit log).
_MAX_CACHED = 50


@dataclass
class DeviceState:
    public_url: str
    device_id: str
    username: str
    name: str
    signing_key: str
    agreement_key: str
    server_signing_key: str
    pin_hash: str | None = None
    # The code a web page asks for after enrolling from the registration panel or the console.
    confirmation_code: str | None = None
    # The relay mailbox this device listens on ({"url", "address", "token"}), when enrolled
    # with --relay.
    relay: dict[str, str] | None = None
    challenges: dict[str, dict[str, Any]] = field(default_factory=dict)

    def remember(self, message: dict[str, Any]) -> None:
        self.challenges[message["transaction_id"]] = message
        while len(self.challenges) > _MAX_CACHED:
            self.challenges.pop(next(iter(self.challenges)))


def load_state(path: Path) -> DeviceState:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"state file {path} not found; enroll first with tapgate authenticator enroll URL --state {path}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"state file {path} is unreadable or not JSON: {exc}") from exc
    try:
        return DeviceState(**data)
    except TypeError as exc:
        raise ConfigError(f"state file {path} has unexpected fields; enroll again") from exc


def create_state(path: Path, state: DeviceState) -> None:
    """Write a new state file; refuse to overwrite an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(
            f"state file {path} already exists; pick another path or delete it first"
        ) from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(state), handle, ensure_ascii=False, indent=1)


def save_state(path: Path, state: DeviceState) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tapgate-state-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(state), handle, ensure_ascii=False, indent=1)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
