"""`tapgate apply`, `export`, `policy` and `auth-profile` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from tapgate.cli.common import (
    Context,
    config_option,
    fail,
    handle_errors,
    read_stdin_line,
    run,
    with_context,
)
from tapgate.errors import ObjectError
from tapgate.objects.document import parse_document
from tapgate.objects.repository import apply_objects, export_document, load_objects
from tapgate.yamlfile import YamlFileError, load_yaml_file


def _read_yaml(path: str) -> Any:
    try:
        return load_yaml_file(Path(path))
    except YamlFileError as exc:
        raise ObjectError(str(exc)) from exc


@click.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--prune", is_flag=True, help="Also delete named objects the file does not mention.")
@config_option
@handle_errors
def apply_command(file: str, prune: bool, config_file: str | None) -> None:
    """Create or update the objects FILE declares, in one transaction."""
    incoming = parse_document(_read_yaml(file))

    async def body(context: Context) -> list[str]:
        async with context.database.write() as session:
            return await apply_objects(
                session, context.keyring, incoming, prune=prune, actor="tapgate apply"
            )

    changes = run(with_context(config_file, body))
    for change in changes:
        click.echo(change)
    if not changes:
        click.echo("no changes")


@click.command("export")
@config_option
@handle_errors
def export_command(config_file: str | None) -> None:
    """Print every object as YAML that `tapgate apply` accepts."""

    async def body(context: Context) -> dict[str, Any]:
        async with context.database.read() as session:
            return export_document(await load_objects(session))

    document = run(with_context(config_file, body))
    click.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False)


@click.group()
def policy() -> None:
    """List, add, move, remove and explain push policies."""


@policy.command("explain")
@click.argument("username")
@click.option(
    "--application",
    default=None,
    help="Application whose methods decide (default: the method push).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@handle_errors
def policy_explain(
    username: str, application: str | None, as_json: bool, config_file: str | None
) -> None:
    """Show the method and push profile USERNAME gets, and why."""
    from tapgate.cli.explain import explain_user

    result = run(
        with_context(config_file, lambda context: explain_user(context, username, application))
    )
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"user: {result.get('username')} (auth profile {result.get('auth_profile')})")
    for lookup in result["lookups"]:
        found = "found" if lookup["found"] else "not found"
        click.echo(f"  auth profile {lookup['auth_profile']}: {found}")
        for key, values in lookup["attributes"].items():
            click.echo(f"    {key}: {', '.join(values) or '(none)'}")
    click.echo(
        f"method: {_or_none(result['method'])}  push profile: {_or_none(result['push_profile'])}"
        f"  policy: {_or_none(result['policy'])}"
    )
    click.echo(f"decided by: {result['decided_by']}")
    for evaluation in result["evaluations"]:
        mark = "match" if evaluation["matched"] else "no match"
        if evaluation["decided"]:
            mark += ", decides"
        elif not evaluation["considered"]:
            mark += ", not needed"
        click.echo(
            f"  {evaluation['position']}. {evaluation['push_profile']}: {mark}: {evaluation['explanation']}"
        )


def _or_none(value: object) -> str:
    """Format an explanation field for text output, where JSON null reads as `none`."""
    return "none" if value is None else str(value)


@click.group("auth-profile")
def auth_profile() -> None:
    """Diagnose auth profiles."""


@auth_profile.command("test")
@click.argument("name")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read a password from standard input and check it."
)
@config_option
@handle_errors
def auth_profile_test(
    name: str, username: str, password_stdin: bool, config_file: str | None
) -> None:
    """Look USERNAME up in auth profile NAME and print what it returns."""
    from tapgate.cli.explain import test_auth_profile

    password = read_stdin_line("the password").rstrip("\n") if password_stdin else None
    lines, ok = run(
        with_context(
            config_file, lambda context: test_auth_profile(context, name, username, password)
        )
    )
    for line in lines:
        click.echo(line)
    if not ok:
        fail("auth profile test failed")
