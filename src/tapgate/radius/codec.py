"""RADIUS packet codec: authenticate and decode a request, encode the reply.

Pure functions over bytes. pyrad's `Packet` and `Dictionary` parse attribute values and compute
the Response Authenticator. The checks that BlastRADIUS (CVE-2024-3596) makes necessary are
done here rather than left to pyrad. Attribute lengths are walked strictly, and a request must
carry exactly one Message-Authenticator, verified with HMAC-MD5 (RFC 3579 section 3.2). Every
reply carries a Message-Authenticator as its first attribute and echoes the request's
Proxy-State attributes in order.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pyrad.dictionary import Dictionary
from pyrad.packet import Packet, PacketError

from tapgate.radius.pap import InvalidPassword, reveal_password
from tapgate.secret import Secret

ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCESS_CHALLENGE = 11
STATUS_SERVER = 12

HEADER_SIZE = 20
# RFC 2865 section 3: the Length field is at most 4096.
MAX_PACKET_SIZE = 4096
MAX_ATTRIBUTE_VALUE = 253

# Attribute types the codec reads by number, before or instead of the dictionary.
USER_NAME = 1
USER_PASSWORD = 2
CHAP_PASSWORD = 3
STATE = 24
PROXY_STATE = 33
EAP_MESSAGE = 79
MESSAGE_AUTHENTICATOR = 80
# RFC 2865 section 5 allows User-Name, User-Password and State at most once in an Access-Request.
SINGLE_ATTRIBUTES = {USER_NAME: "User-Name", USER_PASSWORD: "User-Password", STATE: "State"}

DICTIONARY_PATH = Path(__file__).with_name("tapgate.dictionary")


class PacketDropped(Exception):
    """A received packet that must be discarded without a reply (RFC 2865 section 3)."""


class MalformedPacket(PacketDropped):
    pass


class UnsupportedPacket(PacketDropped):
    """A well-formed packet of a code this server does not handle."""


class MissingMessageAuthenticator(PacketDropped):
    pass


class InvalidMessageAuthenticator(PacketDropped):
    """The Message-Authenticator does not match: a forged packet or a wrong shared secret."""


@dataclass(frozen=True)
class RadiusRequest:
    """An authenticated Access-Request or Status-Server with the attributes tapgate uses."""

    code: int
    identifier: int
    authenticator: bytes
    has_message_authenticator: bool
    proxy_states: tuple[bytes, ...] = ()
    user_name: str | None = None
    password: Secret | None = None
    state: bytes | None = None
    calling_station_id: str | None = None
    framed_ip_address: str | None = None
    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    # "chap" or "eap" when the request carries credentials other than a PAP User-Password.
    other_credentials: str | None = None


@dataclass(frozen=True)
class RadiusReply:
    """The reply to send: Access-Accept, Access-Reject or Access-Challenge, with attributes."""

    code: int
    message: str | None = None
    state: bytes | None = None
    session_timeout: int | None = None


@cache
def dictionary() -> Dictionary:
    return Dictionary(str(DICTIONARY_PATH))


def decode_request(
    data: bytes, secret: bytes, *, require_message_authenticator: bool = True
) -> RadiusRequest:
    """Authenticate and decode an Access-Request or Status-Server.

    Raises a `PacketDropped` subclass for anything the server must silently discard. Status-Server
    always needs a Message-Authenticator (RFC 5997 section 3). An Access-Request needs one unless
    `require_message_authenticator` is false, and a present one is always verified.
    """
    code, identifier, length = _read_header(data)
    packet = data[:length]
    attributes = list(_walk_attributes(packet))

    if code not in (ACCESS_REQUEST, STATUS_SERVER):
        raise UnsupportedPacket(f"packet code {code} is not Access-Request or Status-Server")

    offsets = [offset for kind, _, offset in attributes if kind == MESSAGE_AUTHENTICATOR]
    if len(offsets) > 1:
        raise MalformedPacket("more than one Message-Authenticator")
    if offsets:
        _verify_message_authenticator(packet, offsets[0], secret)
    elif code == STATUS_SERVER or require_message_authenticator:
        raise MissingMessageAuthenticator("Message-Authenticator is missing")

    for kind, name in SINGLE_ATTRIBUTES.items():
        if sum(1 for found, _, _ in attributes if found == kind) > 1:
            raise MalformedPacket(f"{name} appears more than once")

    try:
        parsed = Packet(packet=packet, secret=secret, dict=dictionary())
    except PacketError as error:
        raise MalformedPacket(str(error)) from None
    authenticator = packet[4:20]
    hidden = _first_raw(parsed, USER_PASSWORD)
    password = None
    if hidden is not None:
        try:
            password = Secret(reveal_password(hidden, secret, authenticator))
        except InvalidPassword as error:
            raise MalformedPacket(str(error)) from None

    other_credentials = None
    if _first_raw(parsed, CHAP_PASSWORD) is not None:
        other_credentials = "chap"
    elif _first_raw(parsed, EAP_MESSAGE) is not None:
        other_credentials = "eap"

    return RadiusRequest(
        code=code,
        identifier=identifier,
        authenticator=authenticator,
        has_message_authenticator=bool(offsets),
        proxy_states=tuple(value for kind, value, _ in attributes if kind == PROXY_STATE),
        user_name=_first_text(parsed, "User-Name"),
        password=password,
        state=_first_raw(parsed, STATE),
        calling_station_id=_first_text(parsed, "Calling-Station-Id"),
        framed_ip_address=_first_text(parsed, "Framed-IP-Address"),
        nas_identifier=_first_text(parsed, "NAS-Identifier"),
        nas_ip_address=_first_text(parsed, "NAS-IP-Address"),
        other_credentials=other_credentials,
    )


def encode_reply(request: RadiusRequest, reply: RadiusReply, secret: bytes) -> bytes:
    """Encode `reply` to `request`: Message-Authenticator first, Proxy-State echoed in order."""
    packet = Packet(
        code=reply.code,
        id=request.identifier,
        secret=secret,
        authenticator=request.authenticator,
        dict=dictionary(),
    )
    # Adds a zeroed placeholder at the front; ReplyPacket computes the value over the final bytes.
    packet.add_message_authenticator()
    if request.proxy_states:
        packet[PROXY_STATE] = list(request.proxy_states)
    if reply.message:
        packet["Reply-Message"] = split_text(reply.message)
    if reply.state is not None:
        packet["State"] = [reply.state]
    if reply.session_timeout is not None:
        packet["Session-Timeout"] = [reply.session_timeout]
    return bytes(packet.ReplyPacket())


def split_text(text: str) -> list[str]:
    """Split text into pieces of at most 253 UTF-8 octets without cutting a character, since a
    long Reply-Message is sent as several attributes (RFC 2865 section 5.18)."""
    pieces: list[str] = []
    current = ""
    for character in text:
        if len((current + character).encode("utf-8")) > MAX_ATTRIBUTE_VALUE:
            pieces.append(current)
            current = ""
        current += character
    if current:
        pieces.append(current)
    return pieces


def _read_header(data: bytes) -> tuple[int, int, int]:
    if len(data) < HEADER_SIZE:
        raise MalformedPacket(f"packet of {len(data)} octets is shorter than the header")
    code, identifier, length = struct.unpack("!BBH", data[:4])
    if length < HEADER_SIZE or length > MAX_PACKET_SIZE or length > len(data):
        raise MalformedPacket(f"Length field {length} does not fit a {len(data)}-octet packet")
    return code, identifier, length


def _walk_attributes(packet: bytes) -> Iterator[tuple[int, bytes, int]]:
    """Yield (type, value, offset) for each attribute, failing on any length that does not add
    up, because pyrad quietly truncates the last attribute instead."""
    offset = HEADER_SIZE
    while offset < len(packet):
        if offset + 2 > len(packet):
            raise MalformedPacket(f"attribute header cut off at offset {offset}")
        kind, length = packet[offset], packet[offset + 1]
        if length < 2 or offset + length > len(packet):
            raise MalformedPacket(
                f"attribute {kind} at offset {offset} has invalid length {length}"
            )
        yield kind, packet[offset + 2 : offset + length], offset
        offset += length


def _verify_message_authenticator(packet: bytes, offset: int, secret: bytes) -> None:
    """Check HMAC-MD5 over the packet with the Message-Authenticator value zeroed, keyed with
    the shared secret (RFC 3579 section 3.2)."""
    if packet[offset + 1] != 18:
        raise MalformedPacket("Message-Authenticator is not 16 octets")
    received = packet[offset + 2 : offset + 18]
    zeroed = packet[: offset + 2] + bytes(16) + packet[offset + 18 :]
    expected = hmac.new(secret, zeroed, hashlib.md5).digest()
    if not hmac.compare_digest(received, expected):
        raise InvalidMessageAuthenticator("Message-Authenticator does not match")


def _first_raw(packet: Any, code: int) -> bytes | None:
    values = packet.get(code)
    if not values:
        return None
    return bytes(values[0])


def _first_text(packet: Any, name: str) -> str | None:
    try:
        values: Sequence[object] | None = packet.get(name)
    except (PacketError, ValueError, struct.error) as error:
        raise MalformedPacket(f"{name} cannot be decoded: {error}") from None
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise MalformedPacket(f"{name} is not UTF-8 text")
    return value
