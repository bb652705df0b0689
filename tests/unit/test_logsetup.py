"""The log line format: the standard formatter's text, with the time formatted once a second."""

from __future__ import annotations

import logging

import pytest

from tapgate.logsetup import _Formatter

_STANDARD = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord(
        "tapgate.audit", logging.INFO, __file__, 1, "audit user=%r", ("İsmail",), None
    )
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


@pytest.mark.parametrize(
    "times",
    [
        [1765000000.0],
        [1765000000.0005, 1765000000.999, 1765000001.0],
        [1765000059.5, 1765000060.25, 1765000059.75],
    ],
    ids=["one", "across-a-second", "clock-stepped-back"],
)
def test_formatter_matches_standard_text(times: list[float]) -> None:
    formatter = _Formatter()
    for created in times:
        record = _record(created)
        assert formatter.format(record) == _STANDARD.format(record)
