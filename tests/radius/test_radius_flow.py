"""The per-request flow against an in-memory LoginPort."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tapgate.errors import DirectoryUnavailable, NotFoundError
from tapgate.push.ports import APPROVED, DENIED, EXPIRED, FRAUD, REJECTED, LoginStatus
from tapgate.radius import messages
from tapgate.radius.codec import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    RadiusRequest,
    decode_request,
)
from tapgate.radius.flow import RadiusFlow
from tapgate.radius.login_request import split_password_keyword
from tests.radius.fake_login import SECRET, FakeLogin, build_request, make_client


def request(password: str | None = "Vpn,Parola-1", **attributes: object) -> RadiusRequest:
    values: dict[str, object] = {"User-Name": "selin"}
    values.update(attributes)
    state = values.pop("State", None)
    raw = {24: [state]} if isinstance(state, bytes) else None
    data = build_request(password=password, attributes=values, raw=raw)
    return decode_request(data, SECRET.encode())


async def decide_when_started(login: FakeLogin, status: str = APPROVED, **kwargs: object) -> None:
    await login.started.wait()
    await asyncio.sleep(0.01)
    login.decide(status, **kwargs)


async def handle_and_decide(
    flow: RadiusFlow, client, radius_request: RadiusRequest, login: FakeLogin, status: str
):
    decider = asyncio.create_task(decide_when_started(login, status))
    reply = await flow.handle(client, radius_request)
    await decider
    return reply


async def test_tap_accept_after_approval():
    login = FakeLogin()
    flow = RadiusFlow(login)

    reply = await handle_and_decide(flow, make_client(), request(), login, APPROVED)

    assert reply.code == ACCESS_ACCEPT
    assert reply.message is None


async def test_tap_held_until_decision():
    login = FakeLogin()
    flow = RadiusFlow(login)
    handling = asyncio.create_task(flow.handle(make_client(), request()))

    await login.started.wait()
    await asyncio.sleep(0.05)
    assert not handling.done()

    login.decide(APPROVED)
    assert (await handling).code == ACCESS_ACCEPT


async def test_login_request_fields():
    login = FakeLogin()
    flow = RadiusFlow(login)
    client = make_client(name="fw1", application="vpn", language="tr")

    await handle_and_decide(
        flow, client, request(**{"Calling-Station-Id": "203.0.113.9"}), login, APPROVED
    )

    sent = login.requests[0]
    assert sent.application == "vpn"
    assert sent.username == "selin"
    assert sent.password is not None
    assert sent.password.reveal() == "Vpn,Parola-1"
    assert sent.client_ip == "203.0.113.9"
    assert sent.source == "radius:fw1"
    assert sent.language == "tr"


async def test_turkish_username_and_password():
    login = FakeLogin()
    flow = RadiusFlow(login)
    radius_request = request("ğüzel,Şifre,1", **{"User-Name": "şükrü"})

    await handle_and_decide(flow, make_client(), radius_request, login, APPROVED)

    assert login.requests[0].username == "şükrü"
    assert login.requests[0].password is not None
    assert login.requests[0].password.reveal() == "ğüzel,Şifre,1"


@pytest.mark.parametrize(
    ("setting", "attributes", "expected"),
    [
        (
            "Calling-Station-Id",
            {"Calling-Station-Id": "203.0.113.9", "Framed-IP-Address": "198.51.100.7"},
            "203.0.113.9",
        ),
        (
            "Framed-IP-Address",
            {"Calling-Station-Id": "203.0.113.9", "Framed-IP-Address": "198.51.100.7"},
            "198.51.100.7",
        ),
        ("Calling-Station-Id", {"Calling-Station-Id": "05554443322"}, None),
        ("Calling-Station-Id", {"Calling-Station-Id": "2001:db8::7"}, "2001:db8::7"),
        ("Framed-IP-Address", {"Calling-Station-Id": "203.0.113.9"}, None),
        ("Calling-Station-Id", {"NAS-IP-Address": "10.0.0.1"}, None),
    ],
    ids=["calling", "framed", "phone-number", "ipv6", "framed-missing", "nas-address-unused"],
)
async def test_client_ip_attribute_choice(setting, attributes, expected):
    login = FakeLogin()
    flow = RadiusFlow(login)
    client = make_client(client_ip_attribute=setting)

    await handle_and_decide(flow, client, request(**attributes), login, APPROVED)

    assert login.requests[0].client_ip == expected


@pytest.mark.parametrize(
    ("typed", "password", "keyword"),
    [
        ("Vpn,Parola-1", "Vpn,Parola-1", None),
        ("Vpn,Parola-1,push", "Vpn,Parola-1", "push"),
        ("Parola,PUSH", "Parola", "push"),
        ("Parola, push", "Parola", "push"),
        ("push", "push", None),
        ("a,push,b", "a,push,b", None),
        ("ğüzel,", "ğüzel,", None),
    ],
)
def test_password_keyword_split(typed, password, keyword):
    assert split_password_keyword(typed) == (password, keyword)


async def test_push_keyword_removed_from_password():
    login = FakeLogin()
    flow = RadiusFlow(login)

    await handle_and_decide(flow, make_client(), request("Vpn,Parola-1,push"), login, APPROVED)

    assert login.requests[0].password is not None
    assert login.requests[0].password.reveal() == "Vpn,Parola-1"


@pytest.mark.parametrize(
    ("status", "language", "message"),
    [
        (DENIED, "en", "The login was denied on your phone."),
        (DENIED, "tr", "Giriş telefonunuzdan reddedildi."),
        (FRAUD, "en", messages.FRAUD),
        (
            FRAUD,
            "tr",
            "Giriş, dolandırıcılık girişimi olarak bildirildi. Yöneticiniz bilgilendirildi.",
        ),
        (EXPIRED, "en", messages.EXPIRED),
        (EXPIRED, "tr", "Giriş isteği onaylanmadan süresi doldu."),
    ],
)
async def test_reject_after_decision(status, language, message):
    login = FakeLogin()
    flow = RadiusFlow(login)

    reply = await handle_and_decide(flow, make_client(language=language), request(), login, status)

    assert reply.code == ACCESS_REJECT
    assert reply.message == message


@pytest.mark.parametrize(
    ("reason", "language", "message"),
    [
        ("invalid_credentials", "en", "Invalid username or password."),
        ("invalid_credentials", "tr", "Kullanıcı adı veya parola geçersiz."),
        ("rate_limited", "tr", "Çok fazla giriş denemesi yapıldı. Daha sonra yeniden deneyin."),
        ("no_method", "en", messages.BY_REASON["no_method"]),
        ("directory_unavailable", "en", messages.BY_REASON["directory_unavailable"]),
        ("fraud_locked", "en", messages.BY_REASON["fraud_locked"]),
        ("something_new", "en", messages.REJECTED),
        (None, "tr", "Giriş reddedildi."),
    ],
)
async def test_reject_after_failed_start(reason, language, message):
    login = FakeLogin(immediate=LoginStatus(None, REJECTED, reason=reason))
    flow = RadiusFlow(login)

    reply = await flow.handle(make_client(language=language), request())

    assert reply.code == ACCESS_REJECT
    assert reply.message == message


@pytest.mark.parametrize(
    ("language", "retry_after", "message"),
    [
        ("en", 61, "Too many login attempts. Try again in 2 min."),
        ("tr", 840, "Çok fazla giriş denemesi yapıldı. 14 dakika sonra yeniden deneyin."),
        ("tr", 1, "Çok fazla giriş denemesi yapıldı. 1 dakika sonra yeniden deneyin."),
    ],
)
async def test_rate_limited_names_minutes(language, retry_after, message):
    rejected = LoginStatus("t1", REJECTED, reason="rate_limited", retry_after=retry_after)
    flow = RadiusFlow(FakeLogin(immediate=rejected))

    reply = await flow.handle(make_client(language=language), request())

    assert reply.code == ACCESS_REJECT
    assert reply.message == message


def test_every_reason_translated():
    for message in messages.BY_REASON.values():
        assert messages.translate("tr", message) != message


async def test_budget_exceeded_rejects_and_cancels():
    login = FakeLogin()
    flow = RadiusFlow(login)
    started = time.monotonic()

    reply = await flow.handle(make_client(timeout=0.2), request())

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.TIMED_OUT
    assert login.canceled == ["tx-1"]
    assert time.monotonic() - started < 1.0


async def test_budget_counts_from_arrival():
    login = FakeLogin()
    flow = RadiusFlow(login)
    started = time.monotonic()

    reply = await flow.handle(make_client(timeout=0.5), request(), received_at=started - 0.4)

    assert reply.code == ACCESS_REJECT
    assert time.monotonic() - started < 0.3


async def test_approval_racing_cancel_accepted():
    login = FakeLogin()
    login.approve_on_cancel = True
    flow = RadiusFlow(login)

    reply = await flow.handle(make_client(timeout=0.1), request())

    assert reply.code == ACCESS_ACCEPT


async def test_slow_start_rejected_then_canceled():
    login = FakeLogin(start_delay=0.3)
    flow = RadiusFlow(login)

    reply = await flow.handle(make_client(timeout=0.1), request())
    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.TIMED_OUT

    await asyncio.sleep(0.4)
    assert login.canceled == ["tx-1"]


async def test_no_password_rejected_without_login():
    login = FakeLogin()
    flow = RadiusFlow(login)

    reply = await flow.handle(make_client(), request(password=None))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.PAP_ONLY
    assert login.requests == []


async def test_empty_username_rejected_without_login():
    login = FakeLogin()
    flow = RadiusFlow(login)

    reply = await flow.handle(make_client(), request(**{"User-Name": ""}))

    assert reply.code == ACCESS_REJECT
    assert login.requests == []


async def test_directory_unavailable_error_rejected(caplog):
    class BrokenDirectory(FakeLogin):
        async def start_login(self, request):
            raise DirectoryUnavailable("ldaps://dc1.example.com timed out")

    flow = RadiusFlow(BrokenDirectory())

    reply = await flow.handle(make_client(), request())

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.BY_REASON["directory_unavailable"]
    assert caplog.messages == [
        "radius directory unavailable client=fw1 error=ldaps://dc1.example.com timed out"
    ]


async def test_vanished_transaction_rejected():
    class ForgetfulLogin(FakeLogin):
        async def wait_for_status(self, transaction_id, timeout):
            raise NotFoundError(f"transaction {transaction_id} not found")

    flow = RadiusFlow(ForgetfulLogin())

    reply = await flow.handle(make_client(), request())

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.REJECTED


async def test_password_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    login = FakeLogin()
    flow = RadiusFlow(login)

    await handle_and_decide(flow, make_client(timeout=5), request("Gizli,ğ-Parola"), login, DENIED)
    await flow.handle(make_client(timeout=0.05), request("Gizli,ğ-Parola"))

    assert caplog.records
    assert "Gizli" not in caplog.text
    assert SECRET not in caplog.text


# number mode


async def start_number_login(login: FakeLogin, flow: RadiusFlow, client=None):
    client = client or make_client()
    reply = await flow.handle(client, request())
    return client, reply


async def test_number_challenge_at_once():
    login = FakeLogin(verification="number", number="07")
    flow = RadiusFlow(login)

    _, reply = await start_number_login(login, flow)

    assert reply.code == ACCESS_CHALLENGE
    assert reply.message == "Type 07 on your phone to approve this login, then continue here."
    assert reply.state is not None
    assert len(reply.state) == 16
    assert reply.session_timeout is not None
    assert 55 <= reply.session_timeout <= 60


async def test_number_challenge_in_turkish():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)

    _, reply = await start_number_login(login, flow, make_client(language="tr"))

    assert reply.message == (
        "Bu girişi onaylamak için telefonunuza 42 yazın, ardından burada devam edin."
    )


async def test_number_answer_held_until_approval():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)
    client, challenge = await start_number_login(login, flow)
    answer = request("", State=challenge.state)

    handling = asyncio.create_task(flow.handle(client, answer))
    await asyncio.sleep(0.05)
    assert not handling.done()

    login.decide(APPROVED)
    reply = await handling

    assert reply.code == ACCESS_ACCEPT
    assert len(login.requests) == 1


async def test_number_answer_rejected_after_deny():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)
    client, challenge = await start_number_login(login, flow)
    login.decide(DENIED)

    reply = await flow.handle(client, request("", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.DENIED


async def test_state_used_twice_rejected():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)
    client, challenge = await start_number_login(login, flow)
    login.decide(APPROVED)
    await flow.handle(client, request("", State=challenge.state))

    reply = await flow.handle(client, request("", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.STATE_INVALID


async def test_state_for_other_user_rejected():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)
    client, challenge = await start_number_login(login, flow)
    login.decide(APPROVED)

    reply = await flow.handle(client, request("", State=challenge.state, **{"User-Name": "şükrü"}))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.STATE_INVALID


async def test_state_from_other_client_rejected():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)
    _, challenge = await start_number_login(login, flow)
    login.decide(APPROVED)

    reply = await flow.handle(make_client(name="fw2"), request("", State=challenge.state))

    assert reply.code == ACCESS_REJECT


async def test_guessed_state_rejected():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)
    client, _ = await start_number_login(login, flow)
    login.decide(APPROVED)

    reply = await flow.handle(client, request("", State=b"\x00" * 16))

    assert reply.code == ACCESS_REJECT


async def test_number_answer_budget_exceeded():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)
    client, challenge = await start_number_login(login, flow, make_client(timeout=0.1))

    reply = await flow.handle(client, request("", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.TIMED_OUT
    assert login.canceled == ["tx-1"]


async def test_number_missing_from_status_rejected():
    login = FakeLogin(verification="number", number=None)
    flow = RadiusFlow(login)

    _, reply = await start_number_login(login, flow)

    assert reply.code == ACCESS_REJECT
    assert login.canceled == ["tx-1"]


async def test_client_without_challenge_refuses_number_mode():
    login = FakeLogin(verification="number", number="42")
    flow = RadiusFlow(login)

    reply = await flow.handle(make_client(challenge=False), request())

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.CHALLENGE_UNAVAILABLE
    assert login.canceled == ["tx-1"]


async def test_client_without_challenge_holds_tap_mode():
    login = FakeLogin(verification="tap")
    flow = RadiusFlow(login)

    reply = await handle_and_decide(flow, make_client(challenge=False), request(), login, APPROVED)

    assert reply.code == ACCESS_ACCEPT


# code mode


async def test_code_challenge_at_once():
    login = FakeLogin(verification="code")
    flow = RadiusFlow(login)

    reply = await flow.handle(make_client(), request())

    assert reply.code == ACCESS_CHALLENGE
    assert reply.message == messages.CODE_CHALLENGE
    assert reply.state is not None
    assert login.requests[0].password is not None


async def test_code_accepted_after_approval():
    login = FakeLogin(verification="code", code="492817")
    flow = RadiusFlow(login)
    client = make_client()
    challenge = await flow.handle(client, request())
    login.decide(APPROVED)

    reply = await flow.handle(client, request(" 492817 ", State=challenge.state))

    assert reply.code == ACCESS_ACCEPT
    assert login.submitted == [("tx-1", "492817")]


async def test_code_before_approval_rejected():
    login = FakeLogin(verification="code", code="492817")
    flow = RadiusFlow(login)
    client = make_client()
    challenge = await flow.handle(client, request())

    reply = await flow.handle(client, request("492817", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.CODE_INVALID
    assert login.canceled == ["tx-1"]


async def test_wrong_code_rejected_and_canceled():
    login = FakeLogin(verification="code", code="492817")
    flow = RadiusFlow(login)
    client = make_client(language="tr")
    challenge = await flow.handle(client, request())
    login.decide(APPROVED)

    reply = await flow.handle(client, request("000000", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == "Kod geçersiz. Girişi yeniden başlatın."
    assert login.canceled == ["tx-1"]


async def test_empty_code_rejected_without_submit():
    login = FakeLogin(verification="code")
    flow = RadiusFlow(login)
    client = make_client()
    challenge = await flow.handle(client, request())

    reply = await flow.handle(client, request("", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert login.submitted == []


async def test_code_after_deny_says_denied():
    login = FakeLogin(verification="code")
    flow = RadiusFlow(login)
    client = make_client()
    challenge = await flow.handle(client, request())
    login.decide(DENIED)

    reply = await flow.handle(client, request("492817", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.DENIED


async def test_canceled_handler_cancels_transaction():
    login = FakeLogin()
    flow = RadiusFlow(login)
    handling = asyncio.create_task(flow.handle(make_client(), request()))
    await login.waiting.wait()

    handling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handling

    assert login.canceled == ["tx-1"]


async def test_canceled_during_start_cancels_later():
    login = FakeLogin(start_delay=0.2)
    flow = RadiusFlow(login)
    handling = asyncio.create_task(flow.handle(make_client(), request()))
    await asyncio.sleep(0.05)

    handling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handling
    await asyncio.sleep(0.3)

    assert login.canceled == ["tx-1"]


async def test_non_digit_code_rejected():
    login = FakeLogin(verification="code")
    flow = RadiusFlow(login)
    client = make_client()
    challenge = await flow.handle(client, request())
    login.decide(APPROVED)

    reply = await flow.handle(client, request("49a817", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.CODE_INVALID
    assert login.canceled == ["tx-1"]


async def test_last_wrong_code_says_invalid_code():
    login = FakeLogin(verification="code", max_code_attempts=1)
    flow = RadiusFlow(login)
    client = make_client()
    challenge = await flow.handle(client, request())
    login.decide(APPROVED)

    reply = await flow.handle(client, request("000000", State=challenge.state))

    assert reply.code == ACCESS_REJECT
    assert reply.message == messages.CODE_INVALID


async def test_code_after_expiry_says_expired():
    login = FakeLogin(verification="code")
    flow = RadiusFlow(login)
    client = make_client()
    challenge = await flow.handle(client, request())
    login.decide(EXPIRED)

    reply = await flow.handle(client, request("492817", State=challenge.state))

    assert reply.message == messages.EXPIRED
