"""``ekm keys migrate --to vault|file``: move the keystore between backends, verified first."""

from __future__ import annotations

import typer

from ekm.cli import complete
from ekm.cli.commands.keys import keys_app
from ekm.cli.render import emit_json, kv, message, warn


@keys_app.command("migrate")
def migrate(
    ctx: typer.Context,
    to: str = typer.Option(
        ...,
        "--to",
        metavar="vault|file",
        help="The backend to move the keystore to.",
        autocompletion=complete.store_backends,
    ),
    master_key: str | None = typer.Option(
        None,
        "--master-key",
        metavar="vault-transit",
        help="Re-wrap the root key with Vault Transit on the way (for homes on a key file).",
    ),
) -> None:
    """Copy every key to another backend, check each version decrypts there, then switch.

    ekm.toml changes only after the whole copy verified; on any failure the copy is removed
    and the home keeps using its current backend.

    Example: ekm keys migrate --to vault --master-key vault-transit
    """
    mgr = ctx.obj.manager()
    result = mgr.migrate_keystore(to, master_key=master_key)
    if ctx.obj.json:
        emit_json(result)
        return
    kv(
        "keystore migrated",
        [
            ("from", result["from"]),
            ("to", result["to"]),
            ("keys", len(result["keys"])),
            ("location", result["location"]),
            ("master key", result["master_key"]),
        ],
    )
    if result["old_copy"]:
        warn(
            f"the previous documents are kept in {result['old_copy']}; remove them once the "
            "other hosts are on Vault"
        )
    message(f"ekm.toml now uses the {result['to']} backend")
