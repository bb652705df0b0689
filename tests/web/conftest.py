"""Browser tests: Debian's Chromium driven by Playwright against a real `tapgate serve` process.

One server with local users and an administrator serves the whole session. Each test uses its
own users, so tests do not depend on each other or on their order. The reference authenticator runs as a separate
process (`tapgate authenticator ...`), as a phone would. Screenshots of the pages go to
TAPGATE_SCREENSHOTS when it is set, else to a temporary folder whose path the session prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tapgate.authenticator.device import enroll as enroll_device
from tapgate.authenticator.device import fetch_challenges
from tapgate.authenticator.state import create_state, load_state
from tests.support import TAPGATE, Server, cli_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "Parola-2026!"
ADMIN_PASSWORD = "Yonetici-Parola-1"
OBJECTS = """
auth_profiles:
  - {name: staff, type: local}
push_profiles:
  - {name: office, fallback_auth_profiles: [staff], verification: number, number_digits: 2, default: true,
     max_pending: 3, rate_limit: {count: 100, window: 600}}
  - {name: quick, fallback_auth_profiles: [staff], verification: tap, timeout: 5}
  - {name: typed-code, fallback_auth_profiles: [staff], verification: code}
applications:
  - {name: registration, type: registration, methods: [push], require_password: true}
  - {name: quick-sso, type: sso, methods: [quick], require_password: true}
  - {name: code-sso, type: sso, methods: [typed-code], require_password: true}
  - {name: intranet, type: sso, methods: [push], require_password: true}
  - {name: portal, type: api, methods: [push], require_password: true}
"""
# One server serves every test module; each test signs in with its own users.
USERS = [
    "ayşe",
    "berk",
    "cem",
    "deniz",
    "ece",
    "fatih",
    "gül",
    "hakan",
    "ilker",
    "jale",
    "kaan",
    "leyla",
    "mert",
    "nur",
]

expect.set_options(timeout=15_000)


@dataclass
class Phone:
    """The reference authenticator with its own state file.

    Enrolling and answering run `tapgate authenticator` as a separate process, as a phone app
    would. Reading the open challenges uses the same authenticator code in this process,
    because a process start costs more than the rest of a test step.
    """

    server: Server
    state: Path

    def run(self, command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*TAPGATE, "authenticator", command, "--state", str(self.state), *args],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tapgate authenticator {command} failed: {result.stderr}")
        return result

    def enroll(self, url: str, name: str = "Telefon") -> str | None:
        """Enroll with `url`; return the confirmation code the authenticator printed, if any."""
        output = self.run("enroll", url, "--name", name).stdout
        found = re.search(r"confirmation code: (\d+)", output)
        return found.group(1) if found else None

    def pending(self) -> list[dict[str, Any]]:
        """Return the open challenges; raises ProtocolError when the server rejects the device."""
        return fetch_challenges(load_state(self.state))

    def answer(self, decision: str, number: str | None = None) -> str:
        """Answer the one open challenge; return the authenticator's last line of output."""
        challenges = self.pending()
        assert len(challenges) == 1, challenges
        transaction_id = str(challenges[0]["transaction_id"])
        options = [f"--{decision}"]
        if number is not None:
            options += ["--number", number]
        # "--" ends the options: a transaction id may start with "-".
        output = self.run("answer", *options, "--", transaction_id).stdout
        assert transaction_id in output
        return output.strip().splitlines()[-1]

    def transaction_id(self) -> str:
        """Return the id of the one open challenge."""
        challenges = self.pending()
        assert len(challenges) == 1, challenges
        return str(challenges[0]["transaction_id"])


def tapgate(server: Server, *args: str, stdin: str | None = None) -> str:
    """Run a tapgate command as its own process and return its output.

    Playwright's sync API keeps an event loop running in this thread, so commands cannot run
    in this process (they call asyncio.run).
    """
    return server.cli(*args, stdin=stdin, process=True).stdout


def tapgate_json(server: Server, *args: str) -> Any:
    return json.loads(tapgate(server, *args))


# Runs several tapgate commands in one process, paying the import time once, and prints
# [exit status, standard output, standard error] of each as a JSON list.
_BATCH = """
import json, sys
from click.testing import CliRunner
from tapgate.cli.main import cli
results = []
for args, stdin in json.load(sys.stdin):
    outcome = CliRunner().invoke(cli, args, input=stdin)
    results.append([outcome.exit_code, outcome.stdout, outcome.stderr])
print(json.dumps(results))
"""


def run_commands(
    server: Server, commands: list[tuple[list[str], str | None]], check: bool = True
) -> list[tuple[int, str, str]]:
    """Run tapgate commands (arguments, standard input) in order, in one separate process.

    Returns (exit status, standard output, standard error) of each; with `check`, a failed
    command fails the test.
    """
    batch = [([*args, "--config", str(server.config)], stdin) for args, stdin in commands]
    result = subprocess.run(
        [sys.executable, "-c", _BATCH],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcomes = [(int(code), str(out), str(err)) for code, out, err in json.loads(result.stdout)]
    for (args, _stdin), (code, _out, err) in zip(commands, outcomes, strict=True):
        assert not check or code == 0, f"tapgate {' '.join(args)} failed: {err}"
    return outcomes


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("server")
    instance = Server(workdir, f"sqlite:///{workdir}/tapgate.db")
    instance.start()
    objects = workdir / "objects.yaml"
    objects.write_text(OBJECTS, encoding="utf-8")
    commands: list[tuple[list[str], str | None]] = [(["apply", str(objects)], None)]
    commands += [
        (
            [
                "user",
                "add",
                name,
                "--auth-profile",
                "staff",
                "--password-stdin",
                "--group",
                "personel",
            ],
            PASSWORD + "\n",
        )
        for name in USERS
    ]
    commands.append((["admin", "create", "yonetici", "--password-stdin"], ADMIN_PASSWORD + "\n"))
    run_commands(instance, commands)
    yield instance
    if instance.process and instance.process.poll() is None:
        instance.stop()
    assert "Traceback" not in instance.log()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    instance = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("TAPGATE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def new_context(browser: Browser, server: Server, locale: str = "en-US") -> BrowserContext:
    context = browser.new_context(
        base_url=server.base, locale=locale, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    instance = new_context(browser, server)
    yield instance
    instance.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def shot(screenshots: Path, request: pytest.FixtureRequest) -> Any:
    """Return a function that saves a full-page screenshot named after the test and a step."""

    def save(page: Page, step: str) -> Path:
        path = screenshots / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def phone_for(server: Server, tmp_path: Path, name: str = "phone") -> Phone:
    return Phone(server, tmp_path / f"{name}.json")


def enroll_by_command(server: Server, phone: Phone, username: str, name: str = "Telefon") -> None:
    """Enroll `phone` for `username` with `tapgate enroll`, which needs no confirmation.

    The authenticator side runs in this process: tests that check enrollment itself use
    `Phone.enroll`.
    """
    url = tapgate_json(server, "enroll", username, "--json")["enrollment_url"]
    state = enroll_device(url, name)
    assert state.confirmation_code is None
    create_state(phone.state, state)


def decode_qr(page: Page, tmp_path: Path) -> str:
    """Screenshot the QR code on the page and decode it with zbarimg."""
    image = tmp_path / "qr.png"
    page.locator("#qr svg").screenshot(path=str(image))
    result = subprocess.run(
        ["zbarimg", "--raw", "-q", str(image)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def number_on(page: Page) -> str:
    """Return the number the waiting page shows."""
    number = page.locator(".number")
    expect(number).to_have_text(re.compile(r"^\d+$"))
    return number.inner_text().strip()
