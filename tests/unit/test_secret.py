"""The Secret wrapper: never shown, compared in constant time."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from unittest import mock

import pytest

from tapgate.secret import Secret

VALUE = "Gizli-Parola-İşçi-05554443322"


@pytest.mark.parametrize(
    "render",
    [repr, str, "{}".format, "{!r}".format, lambda value: f"{value}", lambda value: repr([value])],
    ids=["repr", "str", "format", "format-repr", "f-string", "in-list"],
)
def test_rendering_hides_value(render: Callable[[Secret], str]) -> None:
    assert VALUE not in render(Secret(VALUE))


def test_repr_redacted() -> None:
    assert repr(Secret(VALUE)) == "Secret('***')"


def test_log_hides_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("tapgate.test").info("bind password=%s", Secret(VALUE))
    assert VALUE not in caplog.text


def test_reveal_returns_value() -> None:
    assert Secret(VALUE).reveal() == VALUE


def test_equal_secrets() -> None:
    assert Secret(VALUE) == Secret(VALUE)


def test_unequal_secrets() -> None:
    assert Secret(VALUE) != Secret(VALUE + "x")


def test_secret_not_equal_plain_str() -> None:
    assert Secret(VALUE) != VALUE


def test_equality_uses_compare_digest() -> None:
    with mock.patch(
        "tapgate.secret.hmac.compare_digest", wraps=hmac.compare_digest
    ) as compare_digest:
        _ = Secret(VALUE) == Secret("başka")
    compare_digest.assert_called_once()


def test_equality_handles_non_ascii() -> None:
    assert Secret("şifre") != Secret("sifre")


def test_equal_secrets_hash_alike() -> None:
    assert hash(Secret(VALUE)) == hash(Secret(VALUE))


def test_empty_secret_false() -> None:
    assert not Secret("")


def test_non_empty_secret_true() -> None:
    assert Secret(VALUE)


def test_no_instance_dict() -> None:
    assert not hasattr(Secret(VALUE), "__dict__")
