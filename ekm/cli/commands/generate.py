"""``ekm generate``: the configured key set, or one named key."""

from __future__ import annotations

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message, table
from ekm.errors import UsageError


def parse_labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for item in values:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"--label {item!r}: expected KEY=VALUE")
        labels[k] = v
    return labels


@app.command(rich_help_panel="Keys")
def generate(
    ctx: typer.Context,
    name: str | None = typer.Argument(
        None, help="Key name; omit for every missing configured key."
    ),
    key_type: str | None = typer.Option(
        None,
        "--type",
        metavar="TYPE",
        help="Algorithm, e.g. aes-256-gcm, rsa-4096, ed25519, ml-dsa-65.",
        autocompletion=complete.key_types,
    ),
    usage: str | None = typer.Option(
        None,
        "--usage",
        metavar="USAGE",
        help="encryption, signing, mac, key-wrapping, api-auth, key-agreement.",
        autocompletion=complete.key_usages,
    ),
    rotate_every: str | None = typer.Option(
        None, "--rotate-every", metavar="DURATION", help="Rotation interval such as 90d, or never."
    ),
    notify_before: str | None = typer.Option(
        None, "--notify-before", metavar="DURATION", help="Warn this long before rotation is due."
    ),
    backup: bool | None = typer.Option(
        None, "--backup/--no-backup", help="Back the key up before each rotation."
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        metavar="file|pkcs11|vault",
        help="Where the material lives.",
        autocompletion=complete.key_backends,
    ),
    label: list[str] = typer.Option(
        [], "--label", metavar="KEY=VALUE", help="A label (repeatable)."
    ),
) -> None:
    """Generate keys. An existing NAME is an error: use `ekm rotate NAME`.

    Example: ekm generate billing --type aes-256-gcm --rotate-every 90d
    """
    obj = ctx.obj
    mgr = obj.manager()
    if name is None and (key_type or usage or rotate_every or notify_before or backend or label):
        raise UsageError("--type, --usage, --rotate-every, --backend and --label need a key NAME")
    keys = mgr.generate(
        name,
        type=key_type,
        usage=usage,
        rotate_every=rotate_every,
        notify_before=notify_before,
        backup=backup,
        backend=backend,
        labels=parse_labels(label),
    )
    if obj.json:
        emit_json(
            {
                "generated": [
                    {
                        "name": k.name,
                        "type": k.type.value,
                        "usage": k.usage.value,
                        "backend": mgr.kept_in(k.backend),
                        "version": 1,
                    }
                    for k in keys
                ]
            }
        )
        return
    if not keys:
        message("nothing to do: every configured key exists")
        return
    table(
        None,
        ["name", "type", "usage", "backend", "version"],
        [[k.name, k.type.value, k.usage.value, mgr.kept_in(k.backend), "1"] for k in keys],
    )
    message(f"generated {len(keys)} key{'s' if len(keys) != 1 else ''}")
