"""``ekm deploy``: first deployment, idempotent; ``--status`` reports what is in place."""

from __future__ import annotations

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message, table


@app.command(rich_help_panel="Set-up")
def deploy(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be done; change nothing."
    ),
    status: bool = typer.Option(
        False, "--status", help="Report what is in place (exit 1 if incomplete)."
    ),
    master_key: str | None = typer.Option(
        None,
        "--master-key",
        metavar="file|passphrase|pkcs11|vault-transit",
        help="Where the master key comes from (default: file).",
        autocompletion=complete.master_key_sources,
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        metavar="file|vault",
        help="Where the keystore lives; vault joins the keystore shared through the vault "
        "section of ekm.toml (see docs/vault.md).",
        autocompletion=complete.store_backends,
    ),
    systemd: str | None = typer.Option(
        None,
        "--systemd",
        metavar="DIR",
        help="Also write hardened systemd units (monitor service, rotate timer) into DIR.",
    ),
) -> None:
    """Deploy ekm: home (0700), ekm.toml, master key, audit log and the configured key set.

    Running it again changes nothing and says so.

    Example: ekm deploy --master-key passphrase
    """
    obj = ctx.obj
    mgr = obj.manager()
    if status:
        report = mgr.deploy_status()
        if obj.json:
            emit_json(report)
        else:
            table(
                f"Deployment at {report['home']}",
                ["item", "in place", "detail"],
                [[i["item"], "yes" if i["ok"] else "NO", i["detail"]] for i in report["items"]],
            )
        raise typer.Exit(0 if report["complete"] else 1)
    report = mgr.deploy_backend(backend=backend, master_key=master_key, dry_run=dry_run)
    if systemd:
        report["systemd_units"] = _write_units(mgr, systemd, dry_run)
    if obj.json:
        emit_json(report)
        return
    table(
        None,
        ["step", "status", "detail"],
        [[a["step"], a["status"], a["detail"]] for a in report["actions"]],
    )
    if dry_run:
        message("dry run: nothing was changed")
    elif not report["changed"]:
        message(f"nothing to do: the deployment at {report['home']} is complete")
    else:
        message(f"deployed ekm at {report['home']}")


def _write_units(mgr, directory: str, dry_run: bool) -> list[str]:
    import shutil
    from pathlib import Path

    from ekm.monitor.systemd import write_units

    if dry_run:
        return []
    exe = shutil.which("ekm") or "/usr/local/bin/ekm"
    paths = write_units(
        Path(directory),
        ekm_path=exe,
        home=str(mgr.home),
        config=str(getattr(mgr, "config_path", mgr.home / "ekm.toml")),
    )
    for p in paths:
        message(f"wrote {p}")
    return [str(p) for p in paths]
