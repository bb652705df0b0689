"""`tapgate bench` rejects counts above its bounds before it provisions anything."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tapgate.cli.bench import MAX_CONCURRENCY, _levels, bench
from tapgate.cli.main import cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--concurrency", "99999999999999999999"],
            "concurrency 99999999999999999999 is above the maximum of 20000",
            id="concurrency",
        ),
        pytest.param(
            ["--concurrency", "1,20001,10"],
            "concurrency 20001 is above the maximum of 20000",
            id="one concurrency level",
        ),
        pytest.param(
            ["--ldap-concurrency", "20001"],
            "concurrency 20001 is above the maximum of 20000",
            id="ldap concurrency",
        ),
        pytest.param(
            ["--users", "1000001"], "1000001 is not in the range 1<=x<=1000000", id="users"
        ),
        pytest.param(
            ["--connected", "20001"], "20001 is not in the range 1<=x<=20000", id="connected"
        ),
        pytest.param(
            ["--users", "20001"],
            "--users 20001 would open one device stream per user, above the maximum of 20000",
            id="users without connected",
        ),
        pytest.param(
            ["--scale-users", "1000001"],
            "1000001 is not in the range 1<=x<=1000000",
            id="scale users",
        ),
        pytest.param(
            ["--scale-connected", "20001"],
            "20001 is not in the range 1<=x<=20000",
            id="scale connected",
        ),
        pytest.param(
            ["--scale-pending", "20001"],
            "20001 is not in the range 1<=x<=20000",
            id="scale pending",
        ),
        pytest.param(
            ["--scale-concurrency", "20001"],
            "20001 is not in the range 1<=x<=20000",
            id="scale concurrency",
        ),
    ],
)
def test_bench_count_above_maximum_rejected(tmp_path: Path, args: list[str], message: str) -> None:
    workdir = tmp_path / "work"
    output = tmp_path / "results"

    result = CliRunner().invoke(
        cli,
        ["bench", *args, "--no-plot", "--workdir", str(workdir), "--output", str(output)],
    )

    assert result.exit_code == 2
    assert message in result.output
    assert not workdir.exists()
    assert not output.exists()


def test_bench_levels_up_to_maximum_accepted() -> None:
    context = click.Context(bench)
    option = next(p for p in bench.params if p.name == "concurrency")

    assert _levels(context, option, f"1,{MAX_CONCURRENCY}") == (1, MAX_CONCURRENCY)
