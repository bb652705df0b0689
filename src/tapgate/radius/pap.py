"""PAP: the User-Password hiding of RFC 2865 section 5.2.

The password is NUL-padded to a multiple of 16 octets (16 to 128 in all). Each block is XORed
with MD5(secret + previous). For the first block "previous" is the Request Authenticator, and
for each later block it is the hidden block before it.
"""

from __future__ import annotations

import hashlib

BLOCK_SIZE = 16
MAX_HIDDEN_SIZE = 128


class InvalidPassword(ValueError):
    """A hidden User-Password of a bad length, or one that does not decode to UTF-8 text."""


def reveal_password(hidden: bytes, secret: bytes, authenticator: bytes) -> str:
    """Reverse the hiding and decode the text as UTF-8.

    Only trailing NUL padding is removed, so commas, spaces and non-ASCII letters survive.
    Raises InvalidPassword for a bad length or for bytes that are not UTF-8, which is what a
    wrong shared secret produces when the packet has no Message-Authenticator to reveal it.
    """
    if not hidden or len(hidden) % BLOCK_SIZE or len(hidden) > MAX_HIDDEN_SIZE:
        raise InvalidPassword(f"User-Password has an invalid length of {len(hidden)} octets")

    plain = bytearray()
    previous = authenticator
    for start in range(0, len(hidden), BLOCK_SIZE):
        block = hidden[start : start + BLOCK_SIZE]
        plain.extend(_xor(block, _pad(secret, previous)))
        previous = block

    try:
        return bytes(plain).rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPassword("User-Password is not UTF-8; check the shared secret") from None


def hide_password(password: str, secret: bytes, authenticator: bytes) -> bytes:
    """Hide a password as a RADIUS client does; the inverse of `reveal_password`.

    Raises InvalidPassword for a password longer than 128 UTF-8 octets.
    """
    plain = password.encode("utf-8")
    if len(plain) > MAX_HIDDEN_SIZE:
        raise InvalidPassword(f"password of {len(plain)} octets is longer than 128")
    # An empty password becomes one block of NULs.
    plain += b"\x00" * (-len(plain) % BLOCK_SIZE)
    if not plain:
        plain = bytes(BLOCK_SIZE)

    hidden = bytearray()
    previous = authenticator
    for start in range(0, len(plain), BLOCK_SIZE):
        block = _xor(plain[start : start + BLOCK_SIZE], _pad(secret, previous))
        hidden.extend(block)
        previous = block
    return bytes(hidden)


def _pad(secret: bytes, previous: bytes) -> bytes:
    # MD5 is what RFC 2865 specifies here; it is not used as a collision-resistant hash.
    return hashlib.md5(secret + previous, usedforsecurity=False).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))
