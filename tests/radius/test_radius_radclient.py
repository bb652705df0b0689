"""The listener driven by FreeRADIUS's radclient and radtest (Debian's freeradius-utils).

radclient sends a Message-Authenticator only when its input has `Message-Authenticator = 0x00`;
radtest always adds one. Both retransmit the same packet (same Identifier and Request
Authenticator) after `-t` seconds, up to `-r` times.
"""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from tapgate.push.ports import APPROVED, DENIED, EXPIRED
from tests.radius.fake_login import SECRET, FakeLogin, make_client

pytestmark = pytest.mark.skipif(
    shutil.which("radclient") is None or shutil.which("radtest") is None,
    reason="radclient and radtest (Debian package freeradius-utils) are not installed",
)

SELIN = 'User-Name = "selin"\nUser-Password = "Vpn,Parola-1"\n'
WITH_MA = "Message-Authenticator = 0x00\n"


async def radclient(
    server, text: str, *options: str, secret: str = SECRET, command: str = "auth"
) -> tuple[int, str]:
    """Run radclient against the server with `text` as its input; returns (exit code, output)."""
    host, port = server.address
    process = await asyncio.create_subprocess_exec(
        "radclient",
        "-x",
        *options,
        f"{host}:{port}",
        command,
        secret,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(text.encode()), 30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def radtest(server, user: str, password: str) -> tuple[int, str]:
    host, port = server.address
    process = await asyncio.create_subprocess_exec(
        "radtest",
        user,
        password,
        f"{host}:{port}",
        "0",
        SECRET,
        "0",
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def decide_after(login: FakeLogin, delay: float, status: str = APPROVED) -> None:
    await login.started.wait()
    await asyncio.sleep(delay)
    login.decide(status)


def received_state(output: str) -> str:
    match = re.search(r"State = (0x[0-9a-f]+)", output)
    assert match is not None, output
    return match.group(1)


async def test_accept_after_approval_with_retransmissions(server, login):
    deciding = asyncio.create_task(decide_after(login, 2.5))

    code, output = await radclient(server, SELIN + WITH_MA, "-t", "1", "-r", "5")
    await deciding

    assert "Received Access-Accept" in output
    assert code == 0
    assert output.count("Sent Access-Request") >= 3
    assert len(login.requests) == 1
    assert login.requests[0].password is not None
    assert login.requests[0].password.reveal() == "Vpn,Parola-1"


async def test_reject_after_deny(server, login):
    deciding = asyncio.create_task(decide_after(login, 0.3, DENIED))

    code, output = await radclient(server, SELIN + WITH_MA, "-t", "5", "-r", "1")
    await deciding

    assert "Received Access-Reject" in output
    assert 'Reply-Message = "The login was denied on your phone."' in output
    assert code != 0


async def test_reject_after_expiry(server, login):
    deciding = asyncio.create_task(decide_after(login, 0.3, EXPIRED))

    _, output = await radclient(server, SELIN + WITH_MA, "-t", "5", "-r", "1")
    await deciding

    assert "Received Access-Reject" in output
    assert "expired" in output


@pytest.mark.parametrize("clients", [[make_client(language="tr")]])
async def test_reject_in_turkish(server, login):
    deciding = asyncio.create_task(decide_after(login, 0.3, DENIED))

    _, output = await radclient(server, SELIN + WITH_MA, "-t", "5", "-r", "1")
    await deciding

    assert 'Reply-Message = "Giriş telefonunuzdan reddedildi."' in output


async def test_no_message_authenticator_no_answer(server, login):
    code, output = await radclient(server, SELIN, "-t", "1", "-r", "1")

    assert "Received" not in output
    assert code != 0
    assert login.requests == []


async def test_wrong_secret_no_accept(server, login):
    _, output = await radclient(
        server, SELIN + WITH_MA, "-t", "1", "-r", "1", secret="wrong-secret"
    )

    assert "Access-Accept" not in output
    assert "Received" not in output
    assert login.requests == []


async def test_proxy_state_echoed(server, login):
    deciding = asyncio.create_task(decide_after(login, 0.1, APPROVED))

    _, output = await radclient(
        server, SELIN + WITH_MA + "Proxy-State = 0x7461706761746501\n", "-t", "5", "-r", "1"
    )
    await deciding

    received = output.split("Received Access-Accept", 1)[1]
    assert "Proxy-State = 0x7461706761746501" in received


async def test_status_server_answered(server, login):
    code, output = await radclient(server, WITH_MA, "-t", "2", "-r", "1", command="status")

    assert "Received Access-Accept" in output
    assert code == 0
    assert login.requests == []


@pytest.mark.parametrize("login", [FakeLogin(verification="number", number="07")])
async def test_number_mode_challenge_and_answer(server, login):
    _, first = await radclient(server, SELIN + WITH_MA, "-t", "5", "-r", "1")
    assert "Received Access-Challenge" in first
    assert "Type 07 on your phone" in first
    state = received_state(first)

    deciding = asyncio.create_task(decide_after(login, 0.5, APPROVED))
    answer = f'User-Name = "selin"\nUser-Password = ""\nState = {state}\n' + WITH_MA
    code, second = await radclient(server, answer, "-t", "5", "-r", "1")
    await deciding

    assert "Received Access-Accept" in second
    assert code == 0
    assert len(login.requests) == 1


@pytest.mark.parametrize("login", [FakeLogin(verification="number", number="07")])
async def test_number_mode_state_single_use(server, login):
    _, first = await radclient(server, SELIN + WITH_MA, "-t", "5", "-r", "1")
    state = received_state(first)
    login.decide(APPROVED)
    answer = f'User-Name = "selin"\nUser-Password = ""\nState = {state}\n' + WITH_MA
    await radclient(server, answer, "-t", "5", "-r", "1")

    _, replay = await radclient(server, answer, "-t", "5", "-r", "1")

    assert "Received Access-Reject" in replay


@pytest.mark.parametrize("login", [FakeLogin(verification="code", code="492817")])
async def test_code_mode_challenge_and_code(server, login):
    _, first = await radclient(server, SELIN + WITH_MA, "-t", "5", "-r", "1")
    assert "Received Access-Challenge" in first
    assert "enter the code" in first
    state = received_state(first)
    login.decide(APPROVED)

    answer = f'User-Name = "selin"\nUser-Password = "492817"\nState = {state}\n' + WITH_MA
    code, second = await radclient(server, answer, "-t", "5", "-r", "1")

    assert "Received Access-Accept" in second
    assert code == 0


@pytest.mark.parametrize("login", [FakeLogin(verification="code", code="492817")])
async def test_code_mode_wrong_code_rejected(server, login):
    _, first = await radclient(server, SELIN + WITH_MA, "-t", "5", "-r", "1")
    state = received_state(first)
    login.decide(APPROVED)

    answer = f'User-Name = "selin"\nUser-Password = "111111"\nState = {state}\n' + WITH_MA
    _, second = await radclient(server, answer, "-t", "5", "-r", "1")

    assert "Received Access-Reject" in second
    assert "Invalid code" in second


@pytest.mark.parametrize(
    "clients", [[make_client(client_ip_attribute="Framed-IP-Address")]], ids=["framed"]
)
async def test_client_ip_from_framed_ip_address(server, login):
    deciding = asyncio.create_task(decide_after(login, 0.1, APPROVED))
    text = (
        SELIN
        + WITH_MA
        + 'Calling-Station-Id = "05554443322"\n'
        + "Framed-IP-Address = 198.51.100.7\n"
        + "NAS-IP-Address = 127.0.0.1\n"
    )

    await radclient(server, text, "-t", "5", "-r", "1")
    await deciding

    assert login.requests[0].client_ip == "198.51.100.7"


async def test_radtest_accept_after_approval(server, login):
    deciding = asyncio.create_task(decide_after(login, 0.3, APPROVED))

    code, output = await radtest(server, "selin", "Vpn,Parola-1")
    await deciding

    assert "Received Access-Accept" in output
    assert code == 0


async def test_radtest_turkish_user_and_password(server, login):
    deciding = asyncio.create_task(decide_after(login, 0.3, APPROVED))

    _, output = await radtest(server, "şükrü", "Ağaç,dağ,ğüz")
    await deciding

    assert "Received Access-Accept" in output
    assert login.requests[0].username == "şükrü"
    assert login.requests[0].password is not None
    assert login.requests[0].password.reveal() == "Ağaç,dağ,ğüz"


@pytest.mark.parametrize("clients", [[make_client(timeout=1.0)]], ids=["budget-1s"])
async def test_budget_rejects_before_nas_gives_up(server, login):
    code, output = await radclient(server, SELIN + WITH_MA, "-t", "3", "-r", "1")

    assert "Received Access-Reject" in output
    assert "timed out" in output
    assert login.canceled == ["tx-1"]
