"""`tapgate bench`: the push login load benchmark (see docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from tapgate.cli.bench_cluster import check_cluster_options, parse_node_counts
from tapgate.cli.common import handle_errors
from tapgate.logsetup import setup_logging

# Upper bounds that stop a mistyped count before provisioning, instead of letting the load
# generator run out of memory. Each concurrent login or LDAP call is one asyncio task, and each
# concurrent login also opens its own connection. Each open device stream is one connection from
# 127.0.0.1 to the server's one port, and Linux's default ephemeral port range, 32768 to 60999
# (ip-sysctl in the kernel docs), gives 28,232 such connections at a time.
# NOTE: each option is bounded alone, so streams plus logins near both bounds can still run out
# of ports.
MAX_CONCURRENCY = 20_000
MAX_STREAMS = 20_000
# Every provisioned user's device and its P-256 key stay in the load generator's memory for the
# whole run, about 2.5 KiB each (50,000 BenchDevice records measured on CPython 3.11). The
# maximum is ten times the scale run's default of 100,000 users and costs about 2.5 GiB.
MAX_USERS = 1_000_000


def _levels(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected comma-separated integers, e.g. 1,10,50,200"
        ) from None
    if not levels or min(levels) < 1:
        raise click.BadParameter(f"{value!r}: every concurrency must be at least 1")
    if max(levels) > MAX_CONCURRENCY:
        raise click.BadParameter(
            f"{value!r}: concurrency {max(levels)} is above the maximum of {MAX_CONCURRENCY}; "
            f"give levels from 1 to {MAX_CONCURRENCY}"
        )
    return levels


def _check_first_factor(first_factor: str, hashes: str) -> None:
    from tapgate.bench.slapd import missing_programs

    if first_factor != "ldap":
        return
    if hashes != "fast":
        # slapd checks LDAP passwords, so a second sweep with another hash would repeat the first.
        raise click.BadParameter("--hash applies to the local first factor; leave it at fast")
    missing = missing_programs()
    if missing:
        raise click.UsageError(
            f"--first-factor ldap needs {', '.join(missing)} on PATH; "
            "install the Debian packages slapd and ldap-utils"
        )


def _run(run: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run)
    # uvloop's lower per-request overhead leaves more of the shared CPU to the server.
    return uvloop.run(run)


def _level_key(level: dict[str, Any]) -> tuple[str, str, int]:
    return (str(level["system"]), str(level["password_hash"]), int(level["concurrency"]))


@click.command()
@click.option(
    "--users",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_USERS),
    help="Users, each with one device, to provision.",
)
@click.option(
    "--connected",
    type=click.IntRange(min=1, max=MAX_STREAMS),
    default=None,
    help="Devices that hold a stream during the sweep; default: all users.",
)
@click.option(
    "--concurrency",
    default="1,10,50,200",
    show_default=True,
    callback=_levels,
    help="Comma-separated numbers of concurrent logins, one fixed-duration level each.",
)
@click.option(
    "--duration",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.5, max=86_400),
    help="Measured seconds per level.",
)
@click.option(
    "--warmup",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0, max=3_600),
    help="Seconds before each level's measurement starts.",
)
@click.option(
    "--think",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a device waits before approving (subtracted from latency); with "
    "--think-jitter, the longest think time must stay under the application's 30 s wait.",
)
@click.option(
    "--think-jitter",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0, max=1),
    help="Draw each think time uniformly from --think × (1 ± this fraction), as people approve "
    "at different speeds; 0 waits exactly --think.",
)
@click.option(
    "--hash",
    "hashes",
    type=click.Choice(["fast", "default", "both", "none"]),
    default="fast",
    show_default=True,
    help="Password hash cost: fast (TAPGATE_PASSWORD_HASH=fast), default (Argon2id), both "
    "runs, or none (the application does not ask tapgate to check the password).",
)
@click.option(
    "--verification",
    type=click.Choice(["number", "tap"]),
    default="number",
    show_default=True,
    help="Verification mode of the benchmark push profile.",
)
@click.option(
    "--front-door",
    type=click.Choice(["api", "radius", "both"]),
    default="api",
    show_default=True,
    help="How logins arrive: the Auth API, RADIUS Access-Requests (PAP, tap mode), or both, "
    "one level after the other at each concurrency.",
)
@click.option(
    "--first-factor",
    type=click.Choice(["local", "ldap"]),
    default="local",
    show_default=True,
    help="Where users and passwords live: tapgate's local auth profile, or a throwaway slapd "
    "on loopback (needs Debian's slapd and ldap-utils).",
)
@click.option(
    "--ldap-concurrency",
    default="50",
    show_default=True,
    callback=_levels,
    help="With --first-factor ldap: comma-separated numbers of concurrent calls, one bind plus "
    "search measurement each.",
)
@click.option(
    "--no-verify-challenges",
    is_flag=True,
    help="Devices skip checking the server's challenge signature (saves load generator CPU).",
)
@click.option(
    "--server-log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="TAPGATE_LOG_LEVEL of the server under test.",
)
@click.option(
    "--scale",
    is_flag=True,
    help="Also run the scale test (users in the database, held streams and pending transactions).",
)
@click.option(
    "--scale-users",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_USERS),
    help="Users and devices in the database for the scale run.",
)
@click.option(
    "--scale-connected",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_STREAMS),
    help="Device streams held during the scale run.",
)
@click.option(
    "--scale-pending",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_STREAMS),
    help="Pending transactions held during the scale run.",
)
@click.option(
    "--scale-concurrency",
    default=50,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_CONCURRENCY),
    help="Concurrent logins measured while the scale run keeps its streams and pending transactions open.",
)
@click.option("--skip-sweep", is_flag=True, help="Run only the scale test.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where server work directories (database, key file, log) are made; default: the system temp directory.",
)
@click.option(
    "--keep-workdir",
    is_flag=True,
    help="Keep each server's work directory (database and log) after the run.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-results"),
    show_default=True,
    help="Directory for results.json, results.md and results.png.",
)
@click.option(
    "--compare",
    "compare_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another results.json (e.g. privacyIDEA's) whose levels join the table and plot.",
)
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot (matplotlib is not needed then).")
@click.option(
    "--cluster",
    "node_counts",
    default=None,
    callback=parse_node_counts,
    help="Comma-separated node counts, e.g. 1,2,3: run the sweep on that many nodes sharing a "
    "fresh PostgreSQL database instead of one SQLite node. Needs --database-url.",
)
@click.option(
    "--database-url",
    default=None,
    help="With --cluster: a postgresql:// URL of an existing database on a server where the "
    "benchmark may create and drop its own databases.",
)
@handle_errors
def bench(
    users: int,
    connected: int | None,
    concurrency: tuple[int, ...],
    duration: float,
    warmup: float,
    think: float,
    think_jitter: float,
    hashes: str,
    verification: str,
    front_door: str,
    first_factor: str,
    ldap_concurrency: tuple[int, ...],
    no_verify_challenges: bool,
    server_log_level: str,
    scale: bool,
    scale_users: int,
    scale_connected: int,
    scale_pending: int,
    scale_concurrency: int,
    skip_sweep: bool,
    workdir: Path | None,
    keep_workdir: bool,
    output: Path,
    compare_files: tuple[Path, ...],
    no_plot: bool,
    node_counts: tuple[int, ...] | None,
    database_url: str | None,
) -> None:
    """Measure push logins per second and latency against a separate `tapgate serve`.

    Provisions users and devices straight into a fresh SQLite database under the temp
    directory, starts the server, opens one device stream per user, and runs concurrent logins
    through the Auth API (or RADIUS, with --front-door) for a fixed time per concurrency level.
    With --first-factor ldap the users live in a throwaway slapd instead. Loopback only.
    """
    from tapgate.bench.report import markdown_table, write_reports
    from tapgate.bench.runner import BenchOptions, ScaleOptions, run_bench

    setup_logging("INFO")
    for name, seconds in (
        ("--duration", duration),
        ("--warmup", warmup),
        ("--think", think),
        ("--think-jitter", think_jitter),
    ):
        # click's float ranges let NaN through, since every comparison with it is false.
        if not math.isfinite(seconds):
            raise click.BadParameter(f"{name} {seconds}: give a number of seconds")
    if think_jitter and not think:
        raise click.BadParameter(
            f"--think-jitter {think_jitter} spreads the think time, which is 0; give --think "
            "SECONDS too, or leave out --think-jitter"
        )
    from tapgate.bench.driver import WAIT_SECONDS

    longest_think = think * (1 + think_jitter)
    if longest_think >= WAIT_SECONDS:
        # A longer approval outlasts the application's one status request, and the login
        # would count as failed.
        raise click.BadParameter(
            f"--think {think} with --think-jitter {think_jitter} allows {longest_think:g} s, "
            f"but the application waits at most {WAIT_SECONDS} s for the decision; keep "
            f"--think × (1 + --think-jitter) under {WAIT_SECONDS}"
        )
    check_cluster_options(node_counts, database_url, scale)
    if not no_plot and importlib.util.find_spec("matplotlib") is None:
        # Checked before the run, so a missing plotting library does not cost a whole run.
        raise click.UsageError(
            "the plot needs matplotlib, which is not installed: install the bench extra "
            "(pip install -e '.[bench]') or pass --no-plot"
        )
    if node_counts is not None and (front_door != "api" or first_factor != "local"):
        raise click.BadParameter(
            "--cluster drives the Auth API with the local first factor; leave out "
            "--front-door and --first-factor"
        )
    _check_first_factor(first_factor, hashes)
    if connected is not None and not 1 <= connected <= users:
        raise click.BadParameter(f"--connected {connected} must be from 1 to --users ({users})")
    if connected is None and users > MAX_STREAMS and not skip_sweep:
        raise click.BadParameter(
            f"--users {users} would open one device stream per user, above the maximum of "
            f"{MAX_STREAMS} streams; give --connected {MAX_STREAMS} or fewer"
        )
    if scale and not scale_pending <= scale_connected <= scale_users:
        raise click.BadParameter(
            "the scale run needs --scale-pending <= --scale-connected <= --scale-users"
        )
    options = BenchOptions(
        users=users,
        connected=connected,
        concurrency=() if skip_sweep else concurrency,
        duration=duration,
        warmup=warmup,
        think_seconds=think,
        think_jitter=think_jitter,
        hashes=() if skip_sweep else (("fast", "default") if hashes == "both" else (hashes,)),
        verification=verification,
        front_doors=("api", "radius") if front_door == "both" else (front_door,),
        first_factor=first_factor,
        ldap_probe_concurrency=ldap_concurrency,
        verify_challenges=not no_verify_challenges,
        log_level=server_log_level.upper(),
        workdir=workdir,
        keep_workdir=keep_workdir,
        scale=ScaleOptions(scale_users, scale_connected, scale_pending, scale_concurrency)
        if scale
        else None,
    )
    if node_counts is not None and database_url is not None:
        from tapgate.bench.cluster import ClusterOptions, run_cluster_bench

        run = run_cluster_bench(options, ClusterOptions(node_counts, database_url))
    else:
        run = run_bench(options)
    try:
        results = _run(run)
    except Exception as exc:
        import psycopg
        import sqlalchemy.exc

        if database_url is None or not isinstance(
            exc, (psycopg.OperationalError, sqlalchemy.exc.OperationalError)
        ):
            raise
        raise click.ClickException(
            f"cannot use the database at --database-url {database_url!r}: {exc}; check that "
            "the server runs and the role may create databases"
        ) from None
    # A level from a later file replaces one of the same system, hash and concurrency.
    merged = {_level_key(level): level for level in results["levels"]}
    for path in compare_files:
        for level in json.loads(path.read_text(encoding="utf-8"))["levels"]:
            merged[_level_key(level)] = level
    results["levels"] = list(merged.values())
    written = write_reports(results, output, plot=not no_plot)
    click.echo(markdown_table(results["levels"]), nl=False)
    for path in written:
        click.echo(f"wrote {path}")
