"""The log line format: the standard formatter's text, with the time formatted once a second."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from tapgate.cli.main import cli
from tapgate.errors import ConfigError
from tapgate.logsetup import _Formatter, _LoopTurnHandler, setup_logging

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


def test_loop_turn_handler_writes_a_turn_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    handler = _LoopTurnHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tapgate.test.turns")
    logger.addHandler(handler)
    logger.propagate = False
    seen_during_turn: list[str] = []

    async def scenario() -> None:
        logger.warning("giriş başladı")
        logger.warning("itme gönderildi")
        seen_during_turn.append(capsys.readouterr().err)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    try:
        asyncio.run(scenario())
        assert seen_during_turn == [""]
        assert capsys.readouterr().err == "giriş başladı\nitme gönderildi\n"
        # Outside a running loop a line is written at once.
        logger.warning("döngü yok")
        assert capsys.readouterr().err == "döngü yok\n"
    finally:
        logger.removeHandler(handler)


def test_formatter_matches_standard_with_traceback() -> None:
    formatter = _Formatter()
    try:
        raise ValueError("geçersiz değer")
    except ValueError:
        record = logging.LogRecord(
            "tapgate.api", logging.ERROR, __file__, 1, "failed user=%r", ("ayşe",), sys.exc_info()
        )
    record.created = 1765000000.25
    record.msecs = 250.0
    assert formatter.format(record) == _STANDARD.format(record)
    assert "ValueError: geçersiz değer" in formatter.format(record)


def test_unknown_log_level_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPGATE_LOG_LEVEL", "ayrıntılı")
    with pytest.raises(ConfigError, match="unknown level 'ayrıntılı'; use one of debug"):
        setup_logging()


def test_cli_reports_unknown_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPGATE_LOG_LEVEL", "verbose")
    result = CliRunner().invoke(cli, ["audit"])
    assert result.exit_code == 1
    assert "error: TAPGATE_LOG_LEVEL: unknown level 'verbose'" in result.output
    assert "Traceback" not in result.output


def test_bench_without_matplotlib_stops_first(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(cli, ["bench", "--users", "2", "--concurrency", "1"])
    assert result.exit_code == 2
    assert "pass --no-plot" in result.output
