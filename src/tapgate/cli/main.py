"""The `tapgate` command."""

from __future__ import annotations

import click

from tapgate import __version__
from tapgate.cli.admin import admin
from tapgate.cli.authenticator import authenticator
from tapgate.cli.bench import bench
from tapgate.cli.common import fail
from tapgate.cli.manage import device
from tapgate.cli.objects import apply_command, auth_profile, export_command, policy
from tapgate.cli.relay import relay
from tapgate.cli.serve import db, serve
from tapgate.cli.users import audit, client, enroll, user
from tapgate.errors import ConfigError
from tapgate.logsetup import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapgate")
def cli() -> None:
    """tapgate: self-hosted multi-factor authentication with push approval."""
    # Commands print their results; only `serve` logs every event (it raises the level itself).
    try:
        setup_logging("WARNING")
    except ConfigError as exc:
        # The same one line as every other command's error (cli.common.fail), exit status 1.
        fail(str(exc))


for command in (
    serve,
    db,
    apply_command,
    export_command,
    policy,
    auth_profile,
    user,
    client,
    enroll,
    audit,
    authenticator,
    device,
    admin,
    bench,
    relay,
):
    cli.add_command(command)


def main() -> None:
    cli()
