"""Packet decoding, Message-Authenticator checks and reply encoding."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from pyrad.packet import AccessRequest, AccountingRequest, AuthPacket, StatusServer

from tapgate.radius.codec import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    InvalidMessageAuthenticator,
    MalformedPacket,
    MissingMessageAuthenticator,
    PacketDropped,
    RadiusReply,
    UnsupportedPacket,
    decode_request,
    dictionary,
    encode_reply,
    split_text,
)
from tests.radius.fake_login import SECRET, build_request

KEY = SECRET.encode()

# RFC 2865 section 7.1: an Access-Request from NAS 192.168.1.16 for "nemo" / "arctangent".
RFC_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee"
    "0406c0a80110050600000003"
)


def attributes_of(packet: bytes) -> list[tuple[int, bytes]]:
    found = []
    offset = 20
    while offset < len(packet):
        kind, length = packet[offset], packet[offset + 1]
        found.append((kind, packet[offset + 2 : offset + length]))
        offset += length
    return found


def test_rfc_example_decoded():
    request = decode_request(RFC_REQUEST, b"xyzzy5461", require_message_authenticator=False)

    assert request.user_name == "nemo"
    assert request.password is not None
    assert request.password.reveal() == "arctangent"
    assert request.nas_ip_address == "192.168.1.16"
    assert request.has_message_authenticator is False


def test_rfc_example_needs_message_authenticator_by_default():
    with pytest.raises(MissingMessageAuthenticator):
        decode_request(RFC_REQUEST, b"xyzzy5461")


def test_request_attributes_decoded():
    data = build_request(
        password="şükrü,ğ1",
        attributes={
            "User-Name": "şükrü",
            "Calling-Station-Id": "05554443322",
            "Framed-IP-Address": "198.51.100.7",
            "NAS-Identifier": "fw1",
            "NAS-IP-Address": "10.0.0.1",
        },
    )

    request = decode_request(data, KEY)

    assert request.user_name == "şükrü"
    assert request.password is not None
    assert request.password.reveal() == "şükrü,ğ1"
    assert request.calling_station_id == "05554443322"
    assert request.framed_ip_address == "198.51.100.7"
    assert request.nas_identifier == "fw1"
    assert request.nas_ip_address == "10.0.0.1"
    assert request.has_message_authenticator is True
    assert request.state is None
    assert request.other_credentials is None


def test_password_hidden_from_repr():
    request = decode_request(build_request(password="Vpn,Parola-1"), KEY)

    assert "Vpn,Parola-1" not in repr(request)


def test_state_and_proxy_state_decoded():
    data = build_request(raw={24: [b"\x01state"], 33: [b"proxy-a", b"proxy-b"]})

    request = decode_request(data, KEY)

    assert request.state == b"\x01state"
    assert request.proxy_states == (b"proxy-a", b"proxy-b")


def test_chap_request_has_no_password():
    data = build_request(password=None, raw={3: [bytes(17)]})

    request = decode_request(data, KEY)

    assert request.password is None
    assert request.other_credentials == "chap"


def test_wrong_secret_fails_message_authenticator():
    data = build_request(secret="wrong-secret")

    with pytest.raises(InvalidMessageAuthenticator):
        decode_request(data, KEY)


def test_every_flipped_octet_detected():
    data = build_request(attributes={"User-Name": "selin", "NAS-Identifier": "fw1"})

    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        with pytest.raises(PacketDropped):
            decode_request(bytes(changed), KEY)


def test_present_message_authenticator_checked_for_legacy_client():
    data = build_request(secret="wrong-secret")

    with pytest.raises(InvalidMessageAuthenticator):
        decode_request(data, KEY, require_message_authenticator=False)


def test_legacy_request_without_message_authenticator_decoded():
    data = build_request(with_message_authenticator=False)

    request = decode_request(data, KEY, require_message_authenticator=False)

    assert request.user_name == "selin"
    assert request.has_message_authenticator is False


def test_two_message_authenticators_rejected():
    data = build_request()
    header, body = data[:20], data[20:]
    doubled = body + body[:18]
    packet = header[:2] + struct.pack("!H", 20 + len(doubled)) + header[4:] + doubled

    with pytest.raises(MalformedPacket):
        decode_request(packet, KEY)


def test_short_message_authenticator_rejected():
    data = build_request(with_message_authenticator=False, raw={80: [bytes(15)]})

    with pytest.raises(MalformedPacket):
        decode_request(data, KEY)


def test_status_server_needs_message_authenticator():
    data = build_request(code=StatusServer, with_message_authenticator=False, password=None)

    with pytest.raises(MissingMessageAuthenticator):
        decode_request(data, KEY, require_message_authenticator=False)


def test_status_server_decoded():
    data = build_request(code=StatusServer, password=None)

    assert decode_request(data, KEY).code == StatusServer


def test_accounting_request_unsupported():
    data = build_request(code=AccountingRequest, password=None)

    with pytest.raises(UnsupportedPacket):
        decode_request(data, KEY)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x07\x00\x14",
        bytes.fromhex("0107001300") + bytes(16),
        bytes.fromhex("01070030") + bytes(16),
        bytes.fromhex("01071001") + bytes(4097),
        bytes.fromhex("01070016") + bytes(16) + b"\x01\x01",
        bytes.fromhex("01070016") + bytes(16) + b"\x01\x00",
        bytes.fromhex("01070017") + bytes(16) + b"\x01\x05a",
        bytes.fromhex("01070015") + bytes(16) + b"\x01",
    ],
    ids=[
        "empty",
        "header-only",
        "length-below-20",
        "length-beyond-data",
        "length-above-4096",
        "attribute-length-1",
        "attribute-length-0",
        "attribute-overruns",
        "attribute-header-cut",
    ],
)
def test_malformed_packet_rejected(data):
    with pytest.raises(MalformedPacket):
        decode_request(data, KEY, require_message_authenticator=False)


def test_padding_after_length_ignored():
    data = build_request()

    request = decode_request(data + b"\x00" * 7, KEY)

    assert request.user_name == "selin"


def test_duplicate_user_name_rejected():
    data = build_request(attributes={"User-Name": ["selin", "şükrü"]})

    with pytest.raises(MalformedPacket):
        decode_request(data, KEY)


def test_invalid_utf8_user_name_rejected():
    data = build_request(attributes={}, raw={1: [b"\xffselin"]})

    with pytest.raises(MalformedPacket):
        decode_request(data, KEY)


def test_bad_framed_ip_address_rejected():
    data = build_request(raw={8: [b"\x01\x02\x03"]})

    with pytest.raises(MalformedPacket):
        decode_request(data, KEY)


def encoded_reply(reply: RadiusReply, **request_changes) -> tuple[bytes, bytes]:
    data = build_request(**request_changes)
    request = decode_request(data, KEY)
    return data, encode_reply(request, reply, KEY)


def test_reply_message_authenticator_first():
    _, reply = encoded_reply(RadiusReply(ACCESS_REJECT, message="Giriş reddedildi."))

    kinds = [kind for kind, _ in attributes_of(reply)]

    assert kinds[0] == 80
    assert kinds.count(80) == 1


def test_reply_message_authenticator_valid():
    data, reply = encoded_reply(RadiusReply(ACCESS_ACCEPT))
    value = attributes_of(reply)[0][1]
    zeroed = reply[:4] + data[4:20] + reply[20:22] + bytes(16) + reply[38:]

    assert value == hmac.new(KEY, zeroed, hashlib.md5).digest()


def test_reply_response_authenticator_valid():
    data, reply = encoded_reply(RadiusReply(ACCESS_CHALLENGE, state=b"s" * 16, message="42"))

    expected = hashlib.md5(reply[:4] + data[4:20] + reply[20:] + KEY).digest()

    assert reply[4:20] == expected


def test_reply_proxy_state_echoed_in_order():
    _, reply = encoded_reply(
        RadiusReply(ACCESS_REJECT, message="no"), raw={33: [b"first", b"second"]}
    )

    echoed = [value for kind, value in attributes_of(reply) if kind == 33]

    assert echoed == [b"first", b"second"]


def test_reply_passes_pyrad_client_checks():
    data = build_request(raw={33: [b"proxy"]})
    request = decode_request(data, KEY)
    reply = encode_reply(request, RadiusReply(ACCESS_ACCEPT), KEY)
    sent = AuthPacket(packet=data, secret=KEY, dict=dictionary())
    received = AuthPacket(packet=reply, secret=KEY, dict=dictionary())

    assert sent.VerifyReply(received, reply, enforce_ma=True)


def test_reply_fields_encoded():
    _, reply = encoded_reply(
        RadiusReply(
            ACCESS_CHALLENGE,
            message="Bu girişi onaylamak için telefonunuza 07 yazın.",
            state=b"\x00state\xff",
            session_timeout=55,
        )
    )
    packet = AuthPacket(packet=reply, secret=KEY, dict=dictionary())

    assert packet.code == ACCESS_CHALLENGE
    assert packet.id == 7
    assert packet["Reply-Message"] == ["Bu girişi onaylamak için telefonunuza 07 yazın."]
    assert packet["State"] == [b"\x00state\xff"]
    assert packet["Session-Timeout"] == [55]


def test_reply_identifier_matches_request():
    data = build_request(identifier=201)
    reply = encode_reply(decode_request(data, KEY), RadiusReply(ACCESS_ACCEPT), KEY)

    assert reply[1] == 201


def test_long_message_split_on_characters():
    text = "ğ" * 200

    pieces = split_text(text)

    assert "".join(pieces) == text
    assert all(len(piece.encode()) <= 253 for piece in pieces)
    assert len(pieces) == 2


def test_request_is_access_request_code():
    assert decode_request(build_request(), KEY).code == AccessRequest
