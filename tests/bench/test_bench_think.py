"""Think times drawn per login, and latency that leaves out each login's own think time."""

from __future__ import annotations

import random

from click.testing import CliRunner

from tapgate.bench.devices import draw_think
from tapgate.bench.stats import LoginSample, level_from_samples
from tapgate.cli.main import cli


def test_draw_think_within_jitter() -> None:
    rng = random.Random(7)
    draws = [draw_think(0.2, 0.5, rng) for _ in range(2000)]
    assert all(0.1 <= draw <= 0.3 for draw in draws)
    assert min(draws) < 0.11
    assert max(draws) > 0.29
    assert abs(sum(draws) / len(draws) - 0.2) < 0.005
    assert draw_think(0.2, 0.0, rng) == 0.2


def test_latency_subtracts_own_think() -> None:
    samples = [
        # Thought 0.15 s of a 0.2 s mean: 10 ms of the 160 ms were the server's.
        LoginSample(0.0, 0.16, 0.002, 0.152, think_seconds=0.15),
        # No think time of its own: the level's 0.2 s is subtracted.
        LoginSample(1.0, 1.21, 1.003, 1.205),
    ]
    level = level_from_samples(
        system="tapgate",
        password_hash="none",
        concurrency=2,
        duration=2.0,
        samples=samples,
        failures={},
        think_seconds=0.2,
        server_cpu_seconds=0.002,
        loadgen_cpu_seconds=0.001,
        machine_cpu_seconds=0.004,
        server_peak_rss=2**20,
    )
    assert level.latency_ms["p50"] == 10.0
    assert level.latency_ms["max"] == 10.0


def test_think_jitter_above_one_rejected() -> None:
    result = CliRunner().invoke(cli, ["bench", "--think", "0.2", "--think-jitter", "1.5"])
    assert result.exit_code == 2
    assert "--think-jitter" in result.output
    assert "1.5" in result.output


def test_think_jitter_without_think_rejected() -> None:
    result = CliRunner().invoke(cli, ["bench", "--think-jitter", "0.5"])
    assert result.exit_code == 2
    assert "--think-jitter 0.5" in result.output
    assert "--think SECONDS" in result.output


def test_think_past_status_wait_rejected() -> None:
    result = CliRunner().invoke(cli, ["bench", "--think", "20", "--think-jitter", "0.5"])
    assert result.exit_code == 2
    assert "allows 30 s" in result.output
    assert "under 30" in result.output
