"""``ekm monitor``: one pass for cron (``--once``) or the systemd daemon (``--daemon``).

``--once`` prints the findings (a table, or ``--json``) and exits 1 when one is at or above
``--fail-on``; it also sends them to the configured notifiers and writes the metrics file.
``--daemon`` runs in the foreground, logs to stderr and speaks sd_notify (docs/monitoring.md).
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.render import emit_json, message, success, table, warn
from ekm.errors import NotFoundError, UsageError

NOTIFY_TIMEOUT = 30.0  # seconds --once waits for its alerts to be delivered (retries included)


def _flags(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ekm monitor: %(levelname)s %(message)s"))
    root = logging.getLogger("ekm")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


@app.command(rich_help_panel="Operations")
def monitor(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="One pass; exit 1 on findings (default)."),
    daemon: bool = typer.Option(
        False, "--daemon", help="Run in the foreground until SIGTERM (systemd Type=notify)."
    ),
    interval: str | None = typer.Option(
        None, "--interval", metavar="SECONDS", help="Seconds between passes (default 60)."
    ),
    webhook: str | None = typer.Option(
        None, "--webhook", metavar="URL", help="POST alerts here (signed with $EKM_WEBHOOK_SECRET)."
    ),
    slack: str | None = typer.Option(
        None, "--slack", metavar="URL", help="Slack incoming-webhook URL for alerts."
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", metavar="PORT", help="Serve Prometheus metrics (0: a free port)."
    ),
    metrics_file: str | None = typer.Option(
        None, "--metrics-file", metavar="PATH", help="Write metrics for node_exporter (atomic)."
    ),
    fail_on: str | None = typer.Option(
        None,
        "--fail-on",
        metavar="low|medium|high|critical",
        help="--once exits 1 at or above this severity (default high).",
        autocompletion=complete.severities,
    ),
) -> None:
    """Check permissions, integrity, rotation, usage, the audit log and backends; alert.

    Examples: ekm monitor --once --fail-on medium | ekm monitor --daemon --interval 60
    """
    obj = ctx.obj
    if once and daemon:
        raise UsageError("--once and --daemon exclude each other")
    flags = _flags(
        interval=interval,
        webhook=webhook,
        slack=slack,
        metrics_port=metrics_port,
        metrics_file=metrics_file,
        fail_on=fail_on,
    )
    if daemon and obj.json:
        raise UsageError(
            "--json does not apply to --daemon (it logs to stderr); use --metrics-port or "
            "--webhook for machine-readable output, or --once --json"
        )
    _setup_logging(obj.debug)
    if daemon:
        from ekm.monitor.daemon import MonitorDaemon

        def fresh_manager():  # SIGHUP re-reads ekm.toml: a new KeyManager each time
            obj._manager = None
            return obj.manager()

        code = MonitorDaemon(fresh_manager, flags, env=os.environ).run()
        raise typer.Exit(code)
    if interval is not None:
        raise UsageError("--interval goes with --daemon")
    raise typer.Exit(_once(obj, flags))


def _once(obj, flags: dict[str, object]) -> int:
    from ekm.monitor.daemon import MonitorOptions, build_dispatcher, publish, write_metrics_file
    from ekm.timeutil import iso

    mgr = obj.manager()
    if not mgr.deployed:
        raise NotFoundError(f"{mgr.home} is not a deployed ekm home (run `ekm deploy`)")
    options = MonitorOptions.resolve(mgr.config, flags)
    # Notifiers first: a bad URL or secret is a usage error before anything is checked.
    # A one-shot run retries quickly (0.25 s, 0.5 s, 1 s) rather than the daemon's 1-2-4 s.
    dispatcher = build_dispatcher(options, home=str(mgr.home), env=os.environ, backoff=0.25)
    result = mgr.monitor_check()
    failures = []
    if dispatcher is not None:
        try:
            publish(dispatcher, result, options)
            if not dispatcher.drain(NOTIFY_TIMEOUT):
                warn(f"alerts still undelivered after {NOTIFY_TIMEOUT:g}s; giving up")
            failures = dispatcher.failures()
        finally:
            dispatcher.close(timeout=1.0)
    if options.metrics_file is not None:
        write_metrics_file(options.metrics_file, result)
    code = 1 if result.findings(options.fail_on) else 0
    if obj.json:
        emit_json(
            {
                "home": str(mgr.home),
                "time": iso(result.time),
                "fail_on": options.fail_on.name.lower(),
                "exit_code": code,
                "summary": result.summary(),
                "findings": [e.to_dict() for e in result.events],
                "notifier_failures": [e.to_dict() for e in failures],
            }
        )
        return code
    if result.events:
        table(
            None,
            ["severity", "check", "subject", "message"],
            [[e.severity.name, e.check, e.subject, e.message] for e in result.events],
        )
    for failure in failures:
        warn(failure.message)
    counts = ", ".join(f"{n} {s}" for s, n in result.summary().items() if n)
    threshold = options.fail_on.name.lower()
    line = f"monitor: {counts or 'no findings'} (exit {code}: fail-on {threshold})"
    message(line) if result.events else success(line)  # cron mails only on trouble
    return code
