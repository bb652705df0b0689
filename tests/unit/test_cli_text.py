"""Text from the command line and standard input must be UTF-8 before a command uses it."""

from __future__ import annotations

import io

import pytest

from tapgate.cli.common import is_utf8, read_stdin_line
from tapgate.errors import ObjectError


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes, errors: str) -> None:
    # newline="" keeps line endings as sent, as sys.stdin does on POSIX.
    wrapper = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors=errors, newline="")
    monkeypatch.setattr("sys.stdin", wrapper)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ayşe İnce", True),
        ("", True),
        (b"ay\xfee".decode("utf-8", "surrogateescape"), False),
        ("\ud800", False),
    ],
)
def test_is_utf8(text: str, expected: bool) -> None:
    assert is_utf8(text) is expected


# Python reads standard input with "strict" in locales such as en_US.UTF-8, and with
# "surrogateescape" in the C, POSIX and C.UTF-8 locales and in UTF-8 mode (PEP 538, PEP 540).
@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_read_stdin_line_rejects_non_utf8(monkeypatch: pytest.MonkeyPatch, errors: str) -> None:
    _stdin(monkeypatch, b"Parola-\xff\xfe-2026\n", errors)

    with pytest.raises(ObjectError) as raised:
        read_stdin_line("the password")

    assert str(raised.value) == (
        "the password on standard input is not valid UTF-8; pipe it in as UTF-8 text"
    )
    assert "Parola" not in str(raised.value)


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_read_stdin_line_returns_utf8_line(monkeypatch: pytest.MonkeyPatch, errors: str) -> None:
    _stdin(monkeypatch, "Parola-ğüş-2026\r\nikinci satır\n".encode(), errors)

    assert read_stdin_line("the password") == "Parola-ğüş-2026\r\n"
