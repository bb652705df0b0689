"""The pure push core: checking a signed device decision, new digits, the challenge message."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from tapgate.clock import FixedClock
from tapgate.crypto.signing import (
    b64url_encode,
    canonical,
    new_private_key,
    public_key_to_text,
    sign,
)
from tapgate.keys import KeyRing
from tapgate.push.challenge import (
    MAX_CLOCK_SKEW,
    DecisionCheck,
    DeviceView,
    TransactionView,
    challenge_message,
    check_decision,
    new_digits,
    within_clock_skew,
)

CLOCK = FixedClock(datetime(2025, 3, 18, 9, 30, tzinfo=UTC))
NOW = CLOCK.now()
ISSUED = int(NOW.timestamp())
AUDIENCE = "https://mfa.ornek.com.tr"
KEYRING = KeyRing(bytes(range(32)))
DEVICE_KEY = new_private_key()
OTHER_KEY = new_private_key()
NUMBER = "07"

TRANSACTION = TransactionView(
    id="tx-ayse-vpn",
    status="pending",
    nonce="Zq3v0yPpWl2bX9sT4uKcNw",
    verification="number",
    auth_profile="personel",
    user_id="u-ayse-yilmaz",
    expires_at=NOW + timedelta(seconds=60),
    number_hash=KEYRING.hash_token(NUMBER),
    require_user_verification=False,
    code_issued=False,
)
DEVICE = DeviceView(
    id="dev-ayse-telefon",
    auth_profile="personel",
    user_id="u-ayse-yilmaz",
    signing_key=public_key_to_text(DEVICE_KEY.public_key()),
    revoked=False,
)

# Sentinels: SIGN makes `Answer` sign the message with its signer, and DROP removes a field.
SIGN = object()
DROP = object()


def decision_message(**changes: Any) -> dict[str, Any]:
    """Return a valid approve message for TRANSACTION from DEVICE, with `changes` applied."""
    message: dict[str, Any] = {
        "v": 1,
        "aud": AUDIENCE,
        "iat": ISSUED,
        "transaction_id": TRANSACTION.id,
        "nonce": TRANSACTION.nonce,
        "decision": "approve",
        "uv": True,
        "device_id": DEVICE.id,
        "number": NUMBER,
    }
    for key, value in changes.items():
        if value is DROP:
            del message[key]
        else:
            message[key] = value
    return message


def der_signature(message: dict[str, Any]) -> str:
    return b64url_encode(DEVICE_KEY.sign(canonical(message), ec.ECDSA(hashes.SHA256())))


@dataclass
class Answer:
    """A signed decision from a device and the state it meets. `tamper` edits the message after signing."""

    message: Any = field(default_factory=decision_message)
    signature: Any = SIGN
    signer: ec.EllipticCurvePrivateKey = DEVICE_KEY
    tamper: dict[str, Any] = field(default_factory=dict)
    transaction: TransactionView = TRANSACTION
    device: DeviceView = DEVICE
    now: datetime = NOW

    def check(self) -> DecisionCheck:
        signature = self.signature
        if signature is SIGN:
            signature = sign(self.signer, self.message)
        sent = {**self.message, **self.tamper} if self.tamper else self.message
        return check_decision(
            sent,
            signature,
            self.transaction,
            self.device,
            audience=AUDIENCE,
            now=self.now,
            hash_number=KEYRING.hash_token,
        )


def rejected(problem: str) -> DecisionCheck:
    return DecisionCheck(False, problem=problem)


MALFORMED = rejected("malformed answer")
WRONG_HEADER = rejected("wrong version or audience")
OTHER_TARGET = rejected("answer names another device or transaction")
BAD_SIGNATURE = rejected("bad signature")
BAD_NONCE = rejected("nonce does not match the challenge")
BAD_IAT = rejected("iat outside the allowed clock skew")
BAD_DECISION = rejected("invalid decision or uv")
EXPIRED = rejected("answer arrived after expiry")
APPROVED = DecisionCheck(True, status="approved")
DENIED = DecisionCheck(True, status="denied")
FRAUD = DecisionCheck(True, status="fraud")
WRONG_NUMBER = DecisionCheck(True, status="denied", problem="wrong_number")

UV_REQUIRED = replace(TRANSACTION, require_user_verification=True)

CASES = [
    # The message and signature must have the right shape before anything else is read.
    pytest.param(Answer(message=["approve"], signature="AAAA"), MALFORMED, id="message-list"),
    pytest.param(Answer(message=None, signature="AAAA"), MALFORMED, id="message-none"),
    pytest.param(Answer(signature=None), MALFORMED, id="signature-none"),
    pytest.param(Answer(signature=b"AAAA"), MALFORMED, id="signature-bytes"),
    pytest.param(
        Answer(message=decision_message(renk="mavi")),
        rejected("unknown field 'renk'"),
        id="unknown-field",
    ),
    pytest.param(
        Answer(message=decision_message(renk="mavi", **{"açık" * 30: 1})),
        rejected(f"2 unknown fields, first '{('açık' * 6)}'"),
        id="unknown-fields-bounded",
    ),
    # Version and audience.
    pytest.param(Answer(message=decision_message(v=2)), WRONG_HEADER, id="version-2"),
    pytest.param(Answer(message=decision_message(v="1")), WRONG_HEADER, id="version-string"),
    pytest.param(Answer(message=decision_message(v=DROP)), WRONG_HEADER, id="version-missing"),
    pytest.param(
        Answer(message=decision_message(aud="https://mfa.baska.com.tr")),
        WRONG_HEADER,
        id="audience-other",
    ),
    pytest.param(
        Answer(message=decision_message(aud=AUDIENCE + "/")),
        WRONG_HEADER,
        id="audience-trailing-slash",
    ),
    # The message must name this device and this transaction.
    pytest.param(
        Answer(message=decision_message(device_id="dev-ismail-telefon")),
        OTHER_TARGET,
        id="device-id-other",
    ),
    pytest.param(
        Answer(message=decision_message(device_id=DROP)), OTHER_TARGET, id="device-id-missing"
    ),
    pytest.param(
        Answer(message=decision_message(transaction_id="tx-ismail-vpn")),
        OTHER_TARGET,
        id="transaction-id-other",
    ),
    # The device must be live and belong to the transaction's user.
    pytest.param(
        Answer(device=replace(DEVICE, revoked=True)), rejected("device revoked"), id="revoked"
    ),
    pytest.param(
        Answer(device=replace(DEVICE, user_id="u-ismail-kaya")),
        rejected("device belongs to another user"),
        id="device-other-user",
    ),
    pytest.param(
        Answer(device=replace(DEVICE, auth_profile="kurumsal")),
        rejected("device belongs to another user"),
        id="device-other-auth-profile",
    ),
    # Signature.
    pytest.param(
        Answer(message=decision_message(uv=False), tamper={"uv": True}),
        BAD_SIGNATURE,
        id="tampered-uv",
    ),
    pytest.param(Answer(tamper={"number": "08"}), BAD_SIGNATURE, id="tampered-number"),
    pytest.param(Answer(signer=OTHER_KEY), BAD_SIGNATURE, id="other-key"),
    pytest.param(Answer(signature=b64url_encode(bytes(63))), BAD_SIGNATURE, id="63-bytes"),
    pytest.param(Answer(signature=b64url_encode(bytes(65))), BAD_SIGNATURE, id="65-bytes"),
    pytest.param(Answer(signature=""), BAD_SIGNATURE, id="empty"),
    pytest.param(Answer(signature="imza-değil-ş"), BAD_SIGNATURE, id="non-ascii"),
    pytest.param(Answer(signature="A" * 5000), BAD_SIGNATURE, id="oversized"),
    pytest.param(
        Answer(signature=der_signature(decision_message())), BAD_SIGNATURE, id="der-encoded"
    ),
    pytest.param(
        Answer(
            device=replace(DEVICE, signing_key=b64url_encode(b"\x02" + bytes(32))),
        ),
        BAD_SIGNATURE,
        id="device-key-invalid",
    ),
    # Nonce.
    pytest.param(Answer(message=decision_message(nonce="nonce-0000")), BAD_NONCE, id="nonce-other"),
    pytest.param(Answer(message=decision_message(nonce=DROP)), BAD_NONCE, id="nonce-missing"),
    pytest.param(Answer(message=decision_message(nonce=5)), BAD_NONCE, id="nonce-int"),
    # Issue time, with the allowed skew on both sides.
    pytest.param(
        Answer(message=decision_message(iat=ISSUED + MAX_CLOCK_SKEW + 1)),
        BAD_IAT,
        id="iat-ahead",
    ),
    pytest.param(
        Answer(message=decision_message(iat=ISSUED - MAX_CLOCK_SKEW - 1)),
        BAD_IAT,
        id="iat-behind",
    ),
    pytest.param(
        Answer(message=decision_message(iat=ISSUED + MAX_CLOCK_SKEW)), APPROVED, id="iat-ahead-edge"
    ),
    pytest.param(
        Answer(message=decision_message(iat=ISSUED - MAX_CLOCK_SKEW)),
        APPROVED,
        id="iat-behind-edge",
    ),
    pytest.param(Answer(message=decision_message(iat=ISSUED + 0.5)), BAD_IAT, id="iat-float"),
    pytest.param(Answer(message=decision_message(iat=str(ISSUED))), BAD_IAT, id="iat-string"),
    pytest.param(Answer(message=decision_message(iat=True)), BAD_IAT, id="iat-bool"),
    pytest.param(Answer(message=decision_message(iat=DROP)), BAD_IAT, id="iat-missing"),
    # Decision and user verification flag.
    pytest.param(
        Answer(message=decision_message(decision="belki")), BAD_DECISION, id="decision-unknown"
    ),
    pytest.param(
        Answer(message=decision_message(decision="APPROVE")), BAD_DECISION, id="decision-upper"
    ),
    pytest.param(
        Answer(message=decision_message(decision=DROP)), BAD_DECISION, id="decision-missing"
    ),
    pytest.param(Answer(message=decision_message(uv="true")), BAD_DECISION, id="uv-string"),
    pytest.param(Answer(message=decision_message(uv=1)), BAD_DECISION, id="uv-int"),
    pytest.param(Answer(message=decision_message(uv=DROP)), BAD_DECISION, id="uv-missing"),
    # The transaction must still be open.
    pytest.param(
        Answer(transaction=replace(TRANSACTION, status="approved")),
        rejected("transaction already approved"),
        id="already-approved",
    ),
    pytest.param(
        Answer(transaction=replace(TRANSACTION, status="expired")),
        rejected("transaction already expired"),
        id="already-expired",
    ),
    pytest.param(
        Answer(
            message=decision_message(decision="deny"),
            transaction=replace(TRANSACTION, status="denied"),
        ),
        rejected("transaction already denied"),
        id="deny-after-denied",
    ),
    pytest.param(
        Answer(transaction=replace(TRANSACTION, verification="code", code_issued=True)),
        rejected("transaction already pending"),
        id="code-already-issued",
    ),
    pytest.param(
        Answer(transaction=replace(TRANSACTION, expires_at=NOW)), EXPIRED, id="expires-at-now"
    ),
    pytest.param(
        Answer(transaction=replace(TRANSACTION, expires_at=NOW - timedelta(seconds=1))),
        EXPIRED,
        id="expired",
    ),
    pytest.param(
        Answer(
            message=decision_message(decision="fraud"),
            transaction=replace(TRANSACTION, expires_at=NOW),
        ),
        EXPIRED,
        id="fraud-after-expiry",
    ),
    pytest.param(
        Answer(transaction=replace(TRANSACTION, expires_at=NOW + timedelta(seconds=1))),
        APPROVED,
        id="one-second-left",
    ),
    # Deny and fraud are accepted without user verification or a number.
    pytest.param(Answer(message=decision_message(decision="deny")), DENIED, id="deny"),
    pytest.param(Answer(message=decision_message(decision="fraud")), FRAUD, id="fraud"),
    pytest.param(
        Answer(
            message=decision_message(decision="deny", uv=False, number=DROP),
            transaction=UV_REQUIRED,
        ),
        DENIED,
        id="deny-without-uv",
    ),
    pytest.param(
        Answer(
            message=decision_message(decision="fraud", uv=False, number="99"),
            transaction=UV_REQUIRED,
        ),
        FRAUD,
        id="fraud-wrong-number",
    ),
    # User verification.
    pytest.param(
        Answer(message=decision_message(uv=False), transaction=UV_REQUIRED),
        rejected("user verification required but not performed"),
        id="approve-without-uv",
    ),
    pytest.param(Answer(transaction=UV_REQUIRED), APPROVED, id="approve-with-uv"),
    pytest.param(Answer(message=decision_message(uv=False)), APPROVED, id="uv-not-required"),
    # Number matching: a wrong number ends the transaction as denied.
    pytest.param(Answer(), APPROVED, id="number-right"),
    pytest.param(Answer(message=decision_message(number="08")), WRONG_NUMBER, id="number-wrong"),
    pytest.param(
        Answer(message=decision_message(number="7")), WRONG_NUMBER, id="number-without-zero"
    ),
    pytest.param(Answer(message=decision_message(number=DROP)), WRONG_NUMBER, id="number-missing"),
    # A number of the wrong type is a client's bug: rejected, and the login stays open.
    pytest.param(
        Answer(message=decision_message(number=7)),
        rejected("number is not a string"),
        id="number-int",
    ),
    pytest.param(Answer(message=decision_message(number="")), WRONG_NUMBER, id="number-empty"),
    pytest.param(
        Answer(transaction=replace(TRANSACTION, number_hash=None)),
        WRONG_NUMBER,
        id="number-hash-missing",
    ),
    # Other modes ignore the number.
    pytest.param(
        Answer(
            message=decision_message(number=DROP),
            transaction=replace(TRANSACTION, verification="tap", number_hash=None),
        ),
        APPROVED,
        id="tap-mode",
    ),
    pytest.param(
        Answer(
            message=decision_message(number=DROP),
            transaction=replace(TRANSACTION, verification="code", number_hash=None),
        ),
        APPROVED,
        id="code-mode",
    ),
]


@pytest.mark.parametrize(("answer", "expected"), CASES)
def test_check_decision(answer: Answer, expected: DecisionCheck) -> None:
    assert answer.check() == expected


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"iat": 2**60}, id="iat-huge"),
        pytest.param({"iat": float("nan")}, id="iat-nan"),
        pytest.param({"number": 2**53 + 1}, id="number-huge"),
    ],
)
def test_unsignable_answer_rejected(tamper: dict[str, Any]) -> None:
    assert Answer(tamper=tamper).check() == BAD_SIGNATURE


def test_non_ascii_nonce_rejected() -> None:
    assert Answer(message=decision_message(nonce="nonce-şğ")).check() == BAD_NONCE


def test_version_true_rejected() -> None:
    assert Answer(message=decision_message(v=True)).check() == WRONG_HEADER


@given(st.integers(min_value=1, max_value=12))
def test_new_digits_length(count: int) -> None:
    assert len(new_digits(count)) == count


@given(st.integers(min_value=1, max_value=12))
def test_new_digits_only_digits(count: int) -> None:
    assert set(new_digits(count)) <= set("0123456789")


@given(st.data())
def test_new_digits_keeps_value(data: st.DataObject) -> None:
    count = data.draw(st.integers(min_value=1, max_value=10))
    value = data.draw(st.integers(min_value=0, max_value=10**count - 1))
    with mock.patch("tapgate.push.challenge.secrets.randbelow", return_value=value):
        digits = new_digits(count)
    assert digits == str(value).zfill(count)


def test_new_digits_leading_zero() -> None:
    with mock.patch("tapgate.push.challenge.secrets.randbelow", return_value=7):
        assert new_digits(2) == "07"


def test_new_digits_draws_full_range() -> None:
    with mock.patch("tapgate.push.challenge.secrets.randbelow", return_value=0) as randbelow:
        new_digits(4)
    randbelow.assert_called_once_with(10_000)


CONTEXT = {
    "application": "vpn",
    "client_ip": "85.105.1.1",
    "location": "TR",
    "user_agent": "Mozilla/5.0",
    "created_at": NOW.isoformat(),
    "username": "ayşe.yılmaz",
}


def number_challenge() -> dict[str, Any]:
    return challenge_message(
        audience=AUDIENCE, transaction=TRANSACTION, context=CONTEXT, number_digits=2
    )


def test_challenge_has_no_number_field() -> None:
    assert "number" not in number_challenge()


def test_challenge_has_no_number_value() -> None:
    assert NUMBER not in number_challenge().values()


def test_challenge_has_no_number_hash() -> None:
    assert KEYRING.hash_token(NUMBER) not in json.dumps(number_challenge())


def test_challenge_states_digit_count() -> None:
    assert number_challenge()["number_digits"] == 2


def test_tap_challenge_zero_digits() -> None:
    tap = replace(TRANSACTION, verification="tap", number_hash=None)
    message = challenge_message(
        audience=AUDIENCE, transaction=tap, context=CONTEXT, number_digits=2
    )
    assert message["number_digits"] == 0


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("v", 1),
        ("aud", AUDIENCE),
        ("type", "challenge"),
        ("transaction_id", TRANSACTION.id),
        ("nonce", TRANSACTION.nonce),
        ("verification", "number"),
        ("require_user_verification", False),
        ("expires_at", "2025-03-18T09:31:00+00:00"),
        ("username", "ayşe.yılmaz"),
    ],
)
def test_challenge_field(key: str, expected: Any) -> None:
    assert number_challenge()[key] == expected


def test_challenge_is_signable() -> None:
    assert canonical(number_challenge())


@pytest.mark.parametrize(
    ("issued", "accepted"),
    [
        (1_796_461_200, True),
        (1_796_461_200 + 300, True),
        (1_796_461_200 - 301, False),
        (10**400, False),
        (-(10**400), False),
        (True, False),
        (1_796_461_200.0, False),
        ("1796461200", False),
    ],
)
def test_clock_skew_check(issued: object, accepted: bool) -> None:
    now = datetime.fromtimestamp(1_796_461_200, tz=UTC)
    assert within_clock_skew(issued, now) is accepted
