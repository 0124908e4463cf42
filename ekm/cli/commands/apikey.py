"""``ekm apikey create | verify | revoke | list``.

Tokens are printed once by ``create`` (stdout, so ``TOKEN=$(ekm apikey create)`` works) and
never again. ``verify`` reads the token from stdin or ``--token-env VAR``, never from argv:
command lines are visible to every user through ps and /proc.
"""

from __future__ import annotations

import os
import sys

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.options import DryRun, Yes
from ekm.cli.render import emit_json, message, table
from ekm.errors import NotFoundError, UsageError

apikey_app = typer.Typer(help="API keys: create, verify, revoke, list.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey", rich_help_panel="Keys")


@apikey_app.command("create")
def create(
    ctx: typer.Context,
    key: str = typer.Option(
        "api_master",
        "--key",
        metavar="NAME",
        help="api-auth key.",
        autocompletion=complete.key_names,
    ),
    name: str | None = typer.Option(None, "--name", metavar="N", help="A label for people."),
    expires: str | None = typer.Option(None, "--expires", metavar="DURATION", help="e.g. 90d."),
) -> None:
    """Create an API key; the token is printed once on stdout (only its HMAC is stored).

    Example: ekm apikey create --key api_master --name ci --expires 90d
    """
    token, record = ctx.obj.manager().create_api_key(key, name=name, expires=expires)
    if ctx.obj.json:
        emit_json({**record, "token": token})
    else:
        sys.stdout.write(token + "\n")
        message(f"created API key {record['id']}; store the token now, it is not shown again")


def _read_token(token_env: str | None) -> str:
    if token_env:
        value = os.environ.get(token_env)
        if not value:
            raise UsageError(f"--token-env {token_env}: that environment variable is not set")
        return value.strip()
    if sys.stdin.isatty():
        raise UsageError("pipe the token on stdin or pass --token-env VAR (never on argv)")
    value = sys.stdin.read(4096).strip()
    if not value:
        raise UsageError("no token on stdin; pipe it in or pass --token-env VAR")
    return value


@apikey_app.command("verify")
def verify(
    ctx: typer.Context,
    token_env: str | None = typer.Option(
        None, "--token-env", metavar="VAR", help="Read the token from this variable."
    ),
) -> None:
    """Check a token (from stdin or --token-env): exit 0 if valid, 4 if not.

    Example: printf %s "$TOKEN" | ekm apikey verify
    """
    record = ctx.obj.manager().verify_api_key(_read_token(token_env))
    if ctx.obj.json:
        emit_json({"valid": True, **record})
    else:
        message(f"valid: {record['id']} ({record['name'] or 'no name'}, key {record['key']})")


@apikey_app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., metavar="ID"),
    yes: Yes = False,
    dry_run: DryRun = False,
) -> None:
    """Revoke an API key by id (see `ekm apikey list`); clients using it are refused at once.

    Asks on a terminal; off a terminal it needs --yes. --dry-run shows the plan.

    Example: ekm apikey revoke --yes apimaster:0123456789ab
    """
    from ekm.cli.confirm import confirm

    mgr = ctx.obj.manager()
    found = [r for r in mgr.list_api_keys() if r["id"] == key_id]
    if found and not found[0]["revoked"]:
        r = found[0]
        plan = [f"revoke API key {r['id']} ({r['name'] or 'no name'}, key {r['key']})"]
        details = [{"id": r["id"], "name": r["name"], "key": r["key"]}]
        confirm(ctx, "apikey revoke", plan, yes=yes, dry_run=dry_run, details=details)
    elif dry_run:
        if not found:
            raise NotFoundError(f"no API key with id {key_id!r} (see `ekm apikey list`)")
        confirm(ctx, "apikey revoke", [], yes=yes, dry_run=True)  # already revoked
    record = mgr.revoke_api_key(key_id)
    if ctx.obj.json:
        emit_json(record)
    else:
        message(f"revoked {record['id']}")


@apikey_app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List API keys: ids, names, dates (never tokens).

    Example: ekm apikey list --json
    """
    records = ctx.obj.manager().list_api_keys()
    if ctx.obj.json:
        emit_json({"apikeys": records})
        return
    table(
        None,
        ["id", "name", "key", "created", "expires", "revoked"],
        [
            [
                r["id"],
                r["name"],
                f"{r['key']} v{r['version']}",
                r["created"],
                r["expires"] or "never",
                r["revoked"] or "",
            ]
            for r in records
        ],
    )
