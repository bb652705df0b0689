"""ES256 over RFC 8785 canonical JSON, raw r||s in base64url, and P-256 key text."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tapgate.crypto.signing import (
    BadSignature,
    b64url_decode,
    b64url_encode,
    canonical,
    new_private_key,
    private_key_from_text,
    private_key_to_text,
    public_key_from_text,
    public_key_to_text,
    sign,
    verify,
)

KEY = new_private_key()
OTHER_KEY = new_private_key()
MESSAGE: dict[str, Any] = {
    "v": 1,
    "aud": "https://mfa.ornek.com.tr",
    "transaction_id": "tx-ismail-vpn",
    "decision": "approve",
    "number": "07",
    "username": "İsmail Işık",
}
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def raw_to_der(signature: str) -> bytes:
    raw = b64url_decode(signature)
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def signature_with_url_characters() -> str:
    """Return a signature of MESSAGE whose text contains '-' or '_', the characters that
    differ between base64url and standard base64."""
    while True:
        signature = sign(KEY, MESSAGE)
        if "-" in signature or "_" in signature:
            return signature


def test_sign_verify_round_trip() -> None:
    verify(KEY.public_key(), MESSAGE, sign(KEY, MESSAGE))


def test_signature_is_64_raw_bytes() -> None:
    assert len(b64url_decode(sign(KEY, MESSAGE))) == 64


def test_signature_is_86_characters() -> None:
    assert len(sign(KEY, MESSAGE)) == 86


def test_signature_base64url_alphabet() -> None:
    assert BASE64URL.match(sign(KEY, MESSAGE))


def test_signature_has_no_padding() -> None:
    assert "=" not in sign(KEY, MESSAGE)


def test_signature_ignores_key_order() -> None:
    reordered = dict(reversed(list(MESSAGE.items())))
    verify(KEY.public_key(), reordered, sign(KEY, MESSAGE))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("decision", "deny"),
        ("number", "08"),
        ("username", "Ismail Isik"),
        ("v", 2),
        ("extra", True),
    ],
)
def test_verify_rejects_tampered(key: str, value: Any) -> None:
    signature = sign(KEY, MESSAGE)
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), {**MESSAGE, key: value}, signature)


def test_verify_rejects_other_key() -> None:
    with pytest.raises(BadSignature):
        verify(OTHER_KEY.public_key(), MESSAGE, sign(KEY, MESSAGE))


def test_verify_rejects_der_signature() -> None:
    der = KEY.sign(canonical(MESSAGE), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), MESSAGE, b64url_encode(der))


@pytest.mark.parametrize("cut", [1, 2, 4, 43, 85, 86])
def test_verify_rejects_truncated(cut: int) -> None:
    signature = sign(KEY, MESSAGE)
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), MESSAGE, signature[:-cut])


def test_verify_rejects_extended() -> None:
    raw = b64url_decode(sign(KEY, MESSAGE)) + b"\x00"
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), MESSAGE, b64url_encode(raw))


@pytest.mark.parametrize(
    "raw",
    [bytes(64), b"\xff" * 64, bytes(31) + b"\x01" + bytes(31) + b"\x01"],
    ids=["zeros", "ones", "r-s-one"],
)
def test_verify_rejects_degenerate(raw: bytes) -> None:
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), MESSAGE, b64url_encode(raw))


@pytest.mark.parametrize("signature", ["", "imza-değil", "%%%%", "A" * 4097, None, 42])
def test_verify_rejects_non_base64url(signature: Any) -> None:
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), MESSAGE, signature)


@pytest.mark.parametrize("junk", ["!!!!", "    ", "...."], ids=["bang", "space", "dot"])
def test_verify_rejects_junk_characters(junk: str) -> None:
    signature = sign(KEY, MESSAGE)
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), MESSAGE, signature[:40] + junk + signature[40:])


def test_verify_rejects_standard_alphabet() -> None:
    signature = signature_with_url_characters()
    standard = signature.replace("-", "+").replace("_", "/")
    with pytest.raises(BadSignature):
        verify(KEY.public_key(), MESSAGE, standard)


def test_verify_accepts_cryptography_signature() -> None:
    der = KEY.sign(rfc8785.dumps(MESSAGE), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    verify(KEY.public_key(), MESSAGE, base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


def test_cryptography_verifies_signature() -> None:
    der = raw_to_der(sign(KEY, MESSAGE))
    KEY.public_key().verify(der, rfc8785.dumps(MESSAGE), ec.ECDSA(hashes.SHA256()))


def test_public_key_text_round_trip() -> None:
    text = public_key_to_text(KEY.public_key())
    assert public_key_from_text(text) == KEY.public_key()


def test_public_key_text_is_uncompressed_point() -> None:
    raw = b64url_decode(public_key_to_text(KEY.public_key()))
    assert raw == KEY.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def test_public_key_text_no_padding() -> None:
    assert "=" not in public_key_to_text(KEY.public_key())


def point(key: ec.EllipticCurvePrivateKey, form: serialization.PublicFormat) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, form)


def off_curve_point() -> bytes:
    raw = bytearray(point(KEY, serialization.PublicFormat.UncompressedPoint))
    raw[-1] ^= 1
    return bytes(raw)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            b64url_encode(point(KEY, serialization.PublicFormat.CompressedPoint)), id="compressed"
        ),
        pytest.param(b64url_encode(off_curve_point()), id="off-curve"),
        pytest.param(b64url_encode(b"\x04" + bytes(64)), id="zero-point"),
        pytest.param(b64url_encode(b"\x05" + bytes(64)), id="wrong-prefix"),
        pytest.param(
            b64url_encode(point(KEY, serialization.PublicFormat.UncompressedPoint)[:-1]),
            id="short",
        ),
        pytest.param(
            b64url_encode(
                KEY.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
            id="spki-der",
        ),
        pytest.param("anahtar-değil", id="garbage"),
        pytest.param("", id="empty"),
    ],
)
def test_public_key_text_rejected(text: str) -> None:
    with pytest.raises(BadSignature):
        public_key_from_text(text)


def test_private_key_text_round_trip() -> None:
    restored = private_key_from_text(private_key_to_text(KEY))
    assert restored.private_numbers() == KEY.private_numbers()


def test_new_keys_differ() -> None:
    assert private_key_to_text(KEY) != private_key_to_text(OTHER_KEY)


# RFC 8785 rules: members sorted by UTF-16 code units (so an emoji sorts before U+FB33),
# numbers in ECMAScript's shortest round-trip form, and only the escapes JSON requires.
# The expected bytes agree with the rfc8785 package (0.1.4).
CANONICAL = [
    pytest.param({"b": 1, "a": "ş"}, '{"a":"ş","b":1}', id="turkish-value"),
    pytest.param({"ğ": 1, "z": 2, "İ": 3, "ı": 4}, '{"z":2,"ğ":1,"İ":3,"ı":4}', id="turkish-keys"),
    pytest.param(
        {"€": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "ö": 7},
        '{"\\r":2,"1":4,"\u0080":6,"ö":7,"€":1,"\U0001f600":5,"\ufb33":3}',
        id="utf16-order",
    ),
    pytest.param(
        {"z": [3, {"y": None, "x": True}], "a": False},
        '{"a":false,"z":[3,{"x":true,"y":null}]}',
        id="nested",
    ),
    pytest.param([0.0, -0.0, 100.0, 1.5], "[0,0,100,1.5]", id="float-integers"),
    pytest.param(
        [1e21, 1e20, 1e-7, 1e-6], "[1e+21,100000000000000000000,1e-7,0.000001]", id="exponent"
    ),
    pytest.param(
        [9007199254740991, -9007199254740991], "[9007199254740991,-9007199254740991]", id="safe-int"
    ),
    pytest.param([5e-324, 0.1 + 0.2], "[5e-324,0.30000000000000004]", id="shortest-round-trip"),
    pytest.param("a\u000fb\nc\t", '"a\\u000fb\\nc\\t"', id="control-escapes"),
    pytest.param('"q" \\ /', '"\\"q\\" \\\\ /"', id="quote-backslash-slash"),
    pytest.param("\u007f ğ İ", '"\u007f ğ İ"', id="non-ascii-raw"),
]


@pytest.mark.parametrize(("value", "expected"), CANONICAL)
def test_canonical_json(value: Any, expected: str) -> None:
    assert canonical({"x": value}) == b'{"x":' + expected.encode() + b"}"


def test_canonical_top_level() -> None:
    assert canonical({"b": 1, "a": "ş"}) == '{"a":"ş","b":1}'.encode()


def test_canonical_utf8_bytes() -> None:
    assert canonical({"a": "ş"}) == b'{"a":"\xc5\x9f"}'


def test_canonical_matches_rfc8785() -> None:
    assert canonical(MESSAGE) == rfc8785.dumps(MESSAGE)


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.text()
    | st.sampled_from(["İstanbul", "ışık\u2028", "\x00\x1f\x7f", '"\\/', "\ud800"])
)
_JSON_DOCUMENTS = st.recursive(
    _JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _JSON_DOCUMENTS, max_size=6))
def test_canonical_fast_path_matches_rfc8785(document: dict[str, Any]) -> None:
    try:
        expected = bytes(rfc8785.dumps(document))
    except rfc8785.CanonicalizationError as exc:
        with pytest.raises(type(exc)):
            canonical(document)
        return
    assert canonical(document) == expected
