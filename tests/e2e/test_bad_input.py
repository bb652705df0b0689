"""Bad input to the Auth API and the device API: clear 4xx JSON errors, never a 500."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from tapgate.authenticator.device import fetch_challenges, request_header, send_answer
from tapgate.authenticator.state import DeviceState
from tapgate.crypto.signing import private_key_from_text, sign
from tests.e2e.conftest import PASSWORD, enroll_device
from tests.support import Api, Server


@pytest.fixture
def api(server: Server) -> Api:
    return Api(server, "portal")


def post_raw(api: Api, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(
        api.base + "/api/v1/auth",
        content=body,
        headers={**api.headers, "Content-Type": content_type},
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"username": ', 400),
        (b"[]", 400),
        (b"{}", 400),
        (b'{"username": ""}', 400),
        (b'{"username": "ayse", "extra": 1}', 400),
        (b'{"username": "ayse", "client_ip": "not-an-ip"}', 400),
        (b'{"username": 12}', 400),
        (b'{"username": "' + b"a" * 300 + b'"}', 400),
        (b'{"username": "ayse", "password": "' + b"p" * 70_000 + b'"}', 413),
    ],
)
def test_malformed_start_rejected(api: Api, body: bytes, expected: int) -> None:
    response = post_raw(api, body)
    assert response.status_code == expected
    assert set(response.json()) == {"error", "message"}


@pytest.mark.parametrize(
    ("username", "code"),
    [("ayşe\\u0000x", "U+0000"), ("ay\\nşe", "U+000A"), ("ayşe\\u007f", "U+007F")],
)
def test_control_character_username_rejected(api: Api, username: str, code: str) -> None:
    response = post_raw(api, b'{"username": "' + username.encode() + b'", "password": "x"}')
    assert response.status_code == 400
    assert f"control character {code}" in response.json()["message"]


@pytest.mark.parametrize(
    "body", [b'{"username": "\xff\xfe", "password": "x"}', b"[" * 5000 + b"]" * 5000]
)
def test_unreadable_start_body_is_invalid_request(api: Api, body: bytes) -> None:
    response = post_raw(api, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_unknown_user_and_wrong_password_look_alike(api: Api) -> None:
    wrong = api.login("ayşe", "yanlış").json()
    unknown = api.login("hiç-kimse", "yanlış").json()
    assert wrong["status"] == unknown["status"] == "rejected"
    assert wrong["reason"] == unknown["reason"] == "invalid_credentials"
    assert set(wrong) == set(unknown)


def test_missing_password_is_a_wrong_password(api: Api) -> None:
    assert api.login("ayşe").json()["reason"] == "invalid_credentials"


def test_no_device_rejected(api: Api) -> None:
    assert api.login("berk", PASSWORD).json()["reason"] == "no_device"


def test_repeated_failures_rate_limited(api: Api, server: Server) -> None:
    enroll_device(server, "berk")
    reasons = [api.login("berk", "yanlış").json()["reason"] for _ in range(5)]
    assert reasons == ["invalid_credentials"] * 5
    limited = api.login("berk", PASSWORD).json()
    assert limited["reason"] == "rate_limited"
    # The first failure leaves the 15-minute window first, which admits a new attempt.
    assert 14 * 60 < limited["retry_after"] <= 15 * 60
    assert "retry_after" not in api.login("ayşe", "yanlış").json()


def test_bad_bearer_token(server: Server) -> None:
    response = httpx.post(
        server.base + "/api/v1/auth",
        json={"username": "ayşe"},
        headers={"Authorization": "Bearer nope"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_console_json_without_sign_in(server: Server) -> None:
    response = httpx.get(server.base + "/admin/audit/export.json", follow_redirects=False)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_oauth_wrong_secret(server: Server) -> None:
    created = server.cli_json("client", "add", "portal", "--json")
    response = httpx.post(
        server.base + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], "wrong"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_oauth_credentials_in_form_body(server: Server) -> None:
    created = server.cli_json("client", "add", "portal", "--json")
    response = httpx.post(
        server.base + "/oauth/token", data={"grant_type": "client_credentials", **created}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


def test_oauth_unsupported_grant(server: Server) -> None:
    response = httpx.post(server.base + "/oauth/token", data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_unknown_transaction_404(api: Api) -> None:
    response = httpx.get(api.base + "/api/v1/auth/doesnotexist", headers=api.headers)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_other_applications_transaction_hidden(server: Server) -> None:
    enroll_device(server, "ayşe")
    mine = Api(server, "portal")
    other = Api(server, "parolasiz")
    transaction_id = mine.login("ayşe", PASSWORD).json()["transaction_id"]
    response = httpx.get(f"{server.base}/api/v1/auth/{transaction_id}", headers=other.headers)
    assert response.status_code == 404


@pytest.mark.parametrize("wait", ["9999", "nan", "-1", "yarım"])
def test_wait_out_of_range(api: Api, wait: str) -> None:
    response = httpx.get(api.base + f"/api/v1/auth/abc?wait={wait}", headers=api.headers)
    assert response.status_code == 400
    assert f"(got {wait!r})" in response.json()["message"]


def test_code_on_tap_transaction(server: Server, api: Api) -> None:
    enroll_device(server, "ayşe")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    response = httpx.post(
        f"{api.base}/api/v1/auth/{transaction_id}/code",
        json={"code": "123456"},
        headers=api.headers,
    )
    assert response.status_code == 409
    assert response.json()["error"] == "not_code_mode"


def test_enrollment_token_single_use(server: Server) -> None:
    url = server.cli_json("enroll", "ayşe", "--json")["enrollment_url"]
    from tapgate.authenticator.device import ProtocolError, enroll

    enroll(url, "Telefon")
    with pytest.raises(ProtocolError, match="already used or expired") as refused:
        enroll(url, "İkinci")
    assert f"the link points at {server.base}" in str(refused.value)
    records = server.cli_json("audit", "--event", "enrollment", "--json")
    assert [r["outcome"] for r in records] == ["issued", "enrolled", "rejected"]
    assert records[-1]["reason"] == "token already used"


def test_new_enrollment_voids_the_older_one(server: Server) -> None:
    from tapgate.authenticator.device import ProtocolError, enroll

    first = server.cli_json("enroll", "ayşe", "--json")["enrollment_url"]
    second = server.cli_json("enroll", "ayşe", "--json")["enrollment_url"]
    with pytest.raises(ProtocolError):
        enroll(first, "Eski")
    assert enroll(second, "Yeni").device_id
    records = server.cli_json("audit", "--event", "enrollment", "--json")
    rejected = [r for r in records if r["outcome"] == "rejected"]
    assert [r["reason"] for r in rejected] == ["token replaced by a newer link"]


def test_enroll_with_bad_keys_rejected(server: Server) -> None:
    url = server.cli_json("enroll", "ayşe", "--json")["enrollment_url"]
    token = url.rsplit("/", 1)[1]
    response = httpx.post(
        server.base + "/device/v1/enroll",
        json={
            "token": token,
            "signing_key": "AAAA",
            "agreement_key": "AAAA",
            "name": "x",
            "platform": "y",
            "proof": "AAAA",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_key"


def log_containing(server: Server, text: str) -> str:
    """Return the server's log once it contains `text`: lines are written a turn later."""
    deadline = time.monotonic() + 5
    while text not in (log := server.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in log
    return log


def answer_message(
    device: DeviceState, transaction_id: str, decision: str, iat: int | None = None
) -> dict[str, object]:
    """Return the message of a device's answer to its first open challenge."""
    challenge = fetch_challenges(device)[0]
    return {
        "v": 1,
        "aud": device.public_url,
        "iat": int(time.time()) if iat is None else iat,
        "device_id": device.device_id,
        "transaction_id": transaction_id,
        "nonce": challenge["nonce"],
        "decision": decision,
        "uv": False,
    }


def test_answer_replay_changes_nothing(server: Server, api: Api) -> None:
    device = enroll_device(server, "ayşe")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    message = answer_message(device, transaction_id, "deny")
    body = {
        "message": message,
        "signature": sign(private_key_from_text(device.signing_key), message),
    }
    assert httpx.post(server.base + "/device/v1/answer", json=body).status_code == 200
    replay = httpx.post(server.base + "/device/v1/answer", json=body)
    assert replay.status_code == 409
    assert api.status(transaction_id)["status"] == "denied"


def test_tampered_answer_rejected(server: Server, api: Api) -> None:
    device = enroll_device(server, "ayşe")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    message = answer_message(device, transaction_id, "deny")
    signature = sign(private_key_from_text(device.signing_key), message)
    message["decision"] = "approve"
    response = httpx.post(
        server.base + "/device/v1/answer", json={"message": message, "signature": signature}
    )
    assert response.status_code == 409
    assert api.status(transaction_id)["status"] == "pending"


def test_another_users_device_cannot_answer(server: Server, api: Api) -> None:
    ayse = enroll_device(server, "ayşe")
    berk = enroll_device(server, "berk")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    challenge = fetch_challenges(ayse)[0]
    result = send_answer(berk, challenge, "approve", number=None, uv=False)
    assert result["accepted"] is False
    assert api.status(transaction_id)["status"] == "pending"


def test_signed_request_replay_rejected(server: Server) -> None:
    device = enroll_device(server, "ayşe")
    header = request_header(device, "GET", "/device/v1/challenges")
    first = httpx.get(server.base + "/device/v1/challenges", headers={"Authorization": header})
    replay = httpx.get(server.base + "/device/v1/challenges", headers={"Authorization": header})
    assert first.status_code == 200
    assert replay.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"message": 1}',
        b'{"message": {}, "signature": "x"}',
        # Nested past the recursion limit of the JSON parser, and past tapgate's own limit.
        b'{"message": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"message": ' + b"[" * 40 + b"]" * 40 + b', "signature": "x"}',
    ],
)
def test_malformed_answer_rejected(server: Server, body: bytes) -> None:
    response = httpx.post(
        server.base + "/device/v1/answer",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_device_requests_without_signature(server: Server) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1500).decode().rstrip("=")
    for path in ("/device/v1/challenges", "/device/v1/stream"):
        response = httpx.get(server.base + path)
        assert response.status_code == 401
        nested = httpx.get(
            server.base + path, headers={"Authorization": f"TapgateDevice {deep}.AAAA"}
        )
        assert nested.status_code == 401


@pytest.mark.parametrize("issued", [10**400, -(10**400)])
def test_device_request_huge_iat_rejected(server: Server, issued: int) -> None:
    # Unsigned: the clock check runs before the signature check, so anyone can send this.
    for path in ("/device/v1/challenges", "/device/v1/stream"):
        claims = {
            "v": 1,
            "aud": server.base,
            "iat": issued,
            "device_id": "dev-şule",
            "nonce": "n" * 20,
            "method": "GET",
            "path": path,
        }
        encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        response = httpx.get(
            server.base + path, headers={"Authorization": f"TapgateDevice {encoded}.AAAA"}
        )
        assert response.status_code == 401
        assert response.json()["error"] == "device_auth_failed"


def test_answer_huge_iat_rejected(server: Server, api: Api) -> None:
    device = enroll_device(server, "ayşe")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    message = answer_message(device, transaction_id, "approve", iat=10**400)
    # Canonical JSON has no form for an integer this large, so no device could sign it.
    body = {"message": message, "signature": "AAAA"}
    response = httpx.post(server.base + "/device/v1/answer", json=body)
    assert 400 <= response.status_code < 500
    assert api.status(transaction_id)["status"] == "pending"


@pytest.mark.parametrize("path", ["/device/v1/answer", "/device/v1/receipt"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_device_body_not_utf8(server: Server, path: str, encoding: str) -> None:
    phone = enroll_device(server, "ayşe")
    # A lone surrogate that a UTF-16 body would smuggle past the check of UTF-8 bodies.
    text = json.dumps(
        {"message": {"device_id": phone.device_id, "transaction_id": "\ud800"}, "signature": "A"}
    )
    response = httpx.post(
        server.base + path,
        content=text.encode(encoding),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "UTF-8" in response.json()["message"]


def test_answer_with_duplicate_key(server: Server) -> None:
    body = b'{"message": {"decision": "approve", "decision": "deny"}, "signature": "A"}'
    response = httpx.post(
        server.base + "/device/v1/answer",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "'decision' twice" in response.json()["message"]


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.tapgate+json"])
def test_login_with_duplicate_key(api: Api, content_type: str) -> None:
    body = '{"username": "güneş", "username": "ayşe", "password": "x"}'.encode()
    response = post_raw(api, body, content_type)
    assert response.status_code == 400
    assert "'username' twice" in response.json()["message"]


def test_answer_transaction_id_too_long(server: Server) -> None:
    phone = enroll_device(server, "ayşe")
    body = {"message": {"device_id": phone.device_id, "transaction_id": "t" * 65}, "signature": "A"}
    response = httpx.post(server.base + "/device/v1/answer", json=body)
    assert response.status_code == 400
    assert "1 to 64 characters" in response.json()["message"]
    assert "t" * 65 not in response.text


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [
        ("text/plain", "sent with Content-Type: application/json (got 'text/plain')"),
        ("application/x-www-form-urlencoded", "Content-Type: application/json"),
        ("application/json", "request body must be a JSON object"),
    ],
)
def test_login_body_type_named(api: Api, content_type: str, fragment: str) -> None:
    body = b'["ay\xc5\x9fe"]' if content_type == "application/json" else b'{"username": "ayse"}'
    response = post_raw(api, body, content_type)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/api/v1/auth", b"[" * 5000 + b"]" * 5000, "it nests too deep"),
        ("/api/v1/auth", b'{"username": "ay\xfe\xffe"}', "it is not UTF-8 text"),
        ("/api/v1/auth/abc/code", b"[" * 5000 + b"]" * 5000, "it nests too deep"),
        ("/api/v1/auth/abc/code", b'{"code": "12\xfe\xff"}', "it is not UTF-8 text"),
    ],
    ids=["start-deep", "start-not-utf8", "code-deep", "code-not-utf8"],
)
def test_unparsable_json_named(api: Api, path: str, body: bytes, fragment: str) -> None:
    response = httpx.post(
        api.base + path,
        content=body,
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["message"]


@pytest.mark.parametrize("letter", ["ß", "ﬃ", "ŉ"])
def test_name_longer_once_folded(api: Api, letter: str) -> None:
    # Case folding makes these names two or three times longer than the 256 characters sent.
    response = api.login(letter * 256, "yanlış")
    assert response.status_code == 200
    assert response.json()["reason"] == "invalid_credentials"


@pytest.mark.parametrize("field", ["device_id", "transaction_id"])
def test_answer_id_with_nul_rejected(server: Server, api: Api, field: str) -> None:
    device = enroll_device(server, "ayşe")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    message = answer_message(device, transaction_id, "deny")
    message[field] = "a\x00b"
    response = httpx.post(
        server.base + "/device/v1/answer", json={"message": message, "signature": "AAAA"}
    )
    assert response.status_code == 400
    assert "without NUL" in response.json()["message"]
    assert api.status(transaction_id)["status"] == "pending"


@pytest.mark.parametrize(("nonce", "device_id"), [("n" * 15 + "\x00", "d"), ("n" * 20, "a\x00b")])
def test_device_header_with_nul_rejected(server: Server, nonce: str, device_id: str) -> None:
    claims = {
        "v": 1,
        "aud": server.base,
        "iat": int(time.time()),
        "device_id": device_id,
        "nonce": nonce,
        "method": "GET",
        "path": "/device/v1/challenges",
    }
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    response = httpx.get(
        server.base + "/device/v1/challenges",
        headers={"Authorization": f"TapgateDevice {encoded}.AAAA"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "device_auth_failed"


def test_receipt_id_with_nul_rejected(server: Server) -> None:
    message = {
        "v": 1,
        "aud": server.base,
        "iat": int(time.time()),
        "device_id": "d",
        "transaction_id": "a\x00b",
        "nonce": "n" * 20,
        "type": "receipt",
    }
    response = httpx.post(
        server.base + "/device/v1/receipt", json={"message": message, "signature": "AAAA"}
    )
    assert response.status_code == 400
    assert "without NUL" in response.json()["message"]


def test_oauth_client_id_with_nul(server: Server) -> None:
    response = httpx.post(
        server.base + "/oauth/token",
        content=b"grant_type=client_credentials&client_id=tg_a%00b&client_secret=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_swapped_credentials_secret_not_logged(server: Server) -> None:
    created = server.cli_json("client", "add", "portal", "--json")
    response = httpx.post(
        server.base + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(created["client_secret"], created["client_id"]),
    )
    assert response.status_code == 401
    log = log_containing(server, "(not a client id, 43 characters)")
    assert created["client_secret"] not in log


def test_answer_with_many_unknown_fields(server: Server, api: Api) -> None:
    device = enroll_device(server, "ayşe")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    message = answer_message(device, transaction_id, "deny")
    message.update({f"alan_{index}_" + "x" * 100: index for index in range(500)})
    response = httpx.post(
        server.base + "/device/v1/answer", json={"message": message, "signature": "AAAA"}
    )
    assert response.status_code == 409
    assert api.status(transaction_id)["status"] == "pending"
    log = log_containing(server, "500 unknown fields, first 'alan_0_xxx")
    rejected = [line for line in log.splitlines() if "answer_rejected" in line]
    assert all(len(line) < 1000 for line in rejected)


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "１２３４５６", "²³"])
def test_code_in_other_digits_rejected(server: Server, code: str) -> None:
    enroll_device(server, "ayşe")
    api = Api(server, "portal-kod")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    response = httpx.post(
        f"{api.base}/api/v1/auth/{transaction_id}/code", json={"code": code}, headers=api.headers
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_code"
    assert "digits 0-9" in response.json()["message"]


@pytest.mark.parametrize(
    "address", ["/healthz%00", "/register/devices/a%00b/rename", "/admin/audit?user=a%00b"]
)
def test_address_with_nul_rejected(server: Server, address: str) -> None:
    response = httpx.get(server.base + address)
    assert response.status_code == 400
    assert "NUL character" in response.json()["message"]


def test_enrollment_name_with_nul_rejected(server: Server) -> None:
    url = server.cli_json("enroll", "ayşe", "--json")["enrollment_url"]
    token = url.rsplit("/", 1)[1]
    response = httpx.post(
        server.base + "/device/v1/enroll",
        json={
            "token": token,
            "signing_key": "A",
            "agreement_key": "A",
            "name": "Tel\x00efon",
            "platform": "cli",
        },
    )
    assert response.status_code == 400
    assert "without NUL" in response.json()["message"]
