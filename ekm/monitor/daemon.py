"""``ekm monitor --daemon``: the foreground loop systemd runs (``Type=notify``).

The loop: one pass, ``READY=1``; then wait for the interval *or* a change in the home
(:class:`~ekm.monitor.watch.HomeWatcher`, inotify), whichever comes first, and pass again. A
chmod or an edited key file is therefore reported within a second, not at the next interval.

Signals: SIGTERM and SIGINT end the loop cleanly (``STOPPING=1``, queued alerts get a few
seconds to go out, exit 0); SIGHUP re-reads ``ekm.toml`` (a broken config is reported and the
previous one kept). The handlers only set flags; the loop waits in short slices so a signal
is acted on within half a second, without the pitfalls of doing work inside a handler.

Notifiers never block the checks: deliveries happen on the Dispatcher's worker threads, and
a receiver that is down becomes a ``notifier.failed`` event (logged and counted), while the
problem it could not announce is sent again by the next pass.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import EkmError, NotFoundError, UsageError
from ekm.monitor.events import Event
from ekm.monitor.runner import MonitorSession, PassResult, parse_severity
from ekm.timeutil import parse_duration

log = logging.getLogger("ekm.monitor")

SLICE = 0.5  # seconds: how long the loop waits before looking at its signal flags again
MIN_GAP = 0.2  # seconds between two passes triggered by file changes (a rotation writes many)
DRAIN_ON_STOP = 5.0  # seconds queued alerts get to go out on shutdown
MIN_INTERVAL = 0.5


@dataclass(frozen=True)
class MonitorOptions:
    """The monitor's settings: ``[monitor]`` of ekm.toml with command-line flags on top."""

    interval: float
    webhook: str | None
    webhook_secret_env: str
    slack: str | None
    alert_levels: frozenset[SecurityLevel]
    fail_on: SecurityLevel
    metrics_port: int | None
    metrics_bind: str
    metrics_file: Path | None

    def __repr__(self) -> str:
        """Field values, with the webhook and Slack URLs cut to scheme and host.

        A Slack incoming-webhook URL *is* its credential (the path), and webhook URLs often
        carry tokens in the path or query: a repr in a log or traceback must not hold them.
        """
        from ekm.monitor.notifiers import redact_url

        def url(value: str | None) -> str:
            return "None" if value is None else repr(redact_url(value))

        return (
            f"MonitorOptions(interval={self.interval!r}, webhook={url(self.webhook)}, "
            f"webhook_secret_env={self.webhook_secret_env!r}, slack={url(self.slack)}, "
            f"alert_levels={sorted(x.name for x in self.alert_levels)!r}, "
            f"fail_on={self.fail_on.name}, metrics_port={self.metrics_port!r}, "
            f"metrics_bind={self.metrics_bind!r}, metrics_file={self.metrics_file!r})"
        )

    @classmethod
    def resolve(cls, config: Any, flags: Mapping[str, Any] | None = None) -> MonitorOptions:
        """Merge ``config.sections["monitor"]`` with ``flags`` (None values: not given)."""
        section = dict(config.sections["monitor"])
        for name, value in (flags or {}).items():
            if value is not None:
                section[name] = value
        interval = _interval(section["interval"])
        levels = frozenset(
            parse_severity(x, "[monitor] alert_levels entry") for x in section["alert_levels"]
        )
        port = section.get("metrics_port")
        if port is not None and not 0 <= int(port) <= 65535:
            raise UsageError(f"--metrics-port {port} is out of range; use 1-65535 (0: any free)")
        mfile = section.get("metrics_file")
        return cls(
            interval=interval,
            webhook=section.get("webhook") or None,
            webhook_secret_env=section.get("webhook_secret_env") or "EKM_WEBHOOK_SECRET",
            slack=section.get("slack") or None,
            alert_levels=levels,
            fail_on=parse_severity(section["fail_on"], "--fail-on"),
            metrics_port=None if port is None else int(port),
            metrics_bind=section.get("metrics_bind") or "127.0.0.1",
            metrics_file=Path(mfile).expanduser() if mfile else None,
        )


def _interval(value: Any) -> float:
    """``--interval 30``, ``30s`` or ``5m`` -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = parse_duration(text).total_seconds()
            except ValueError:
                raise UsageError(
                    f"--interval {text[:40]!r}: give seconds (30) or a duration (30s, 5m)"
                ) from None
    if not MIN_INTERVAL <= seconds <= 86400:
        raise UsageError(f"--interval must be from {MIN_INTERVAL:g}s to 1 day, not {seconds:g}s")
    return seconds


def build_dispatcher(
    options: MonitorOptions,
    *,
    home: str,
    env: Mapping[str, str],
    backoff: float = 1.0,
    on_failure: Callable[[Event], Any] | None = None,
) -> Any:
    """The Dispatcher for the configured notifiers, or None when there are none.

    The webhook signing secret comes from the environment variable named by
    ``[monitor] webhook_secret_env``; it is never read from ekm.toml, which is not a secret.
    """
    from ekm.monitor.notifiers import Dispatcher, SlackNotifier, WebhookNotifier

    notifiers: list[Any] = []
    if options.webhook:
        secret = env.get(options.webhook_secret_env) or None
        notifiers.append(WebhookNotifier(options.webhook, secret=secret, home=home))
        if secret is None:
            log.warning(
                "webhook bodies are not signed: set %s to a random secret "
                "(openssl rand -hex 32) so receivers can verify them",
                options.webhook_secret_env,
            )
    if options.slack:
        notifiers.append(SlackNotifier(options.slack, home=home))
    if not notifiers:
        return None
    return Dispatcher(notifiers, backoff=backoff, on_failure=on_failure)


def publish(dispatcher: Any, result: PassResult, options: MonitorOptions) -> None:
    """Hand this pass's alert-level events to the notifiers (they de-duplicate)."""
    if dispatcher is None:
        return
    dispatcher.publish(
        [e for e in result.events if e.severity in options.alert_levels], now=result.time
    )


def write_metrics_file(path: Path, result: PassResult) -> None:
    from ekm.monitor.metrics import write_textfile

    write_textfile(path, result.snapshot)


def log_transitions(result: PassResult) -> None:
    """One stderr line per problem that opened or resolved in this pass."""
    for e in result.opened:
        level = logging.INFO if e.severity is SecurityLevel.INFO else logging.WARNING
        log.log(level, "%s %s %s: %s", e.severity.name, e.check, e.subject, e.message)
    for e in result.resolved:
        log.info("RESOLVED %s %s", e.check, e.subject)


class MonitorDaemon:
    """The ``--daemon`` loop over one home.

    ``manager_factory`` builds a fresh KeyManager (called again on SIGHUP to re-read the
    config); ``flags`` are the command-line overrides of ``[monitor]``; ``notify`` is
    :func:`ekm.monitor.systemd.sd_notify` (a parameter so tests can record the protocol).
    """

    def __init__(
        self,
        manager_factory: Callable[[], Any],
        flags: Mapping[str, Any],
        *,
        env: Mapping[str, str],
        notify: Callable[[str], Any] | None = None,
        backoff: float = 1.0,
    ) -> None:
        from ekm.monitor.systemd import sd_notify

        self._factory = manager_factory
        self._flags = dict(flags)
        self._env = env
        self._notify = notify or (lambda state: sd_notify(state, env=env))
        self._backoff = backoff
        self._stop = False
        self._reload = False
        self.manager: Any = None
        self.options: MonitorOptions | None = None
        self.session: MonitorSession | None = None
        self.dispatcher: Any = None
        self.server: Any = None
        self.passes = 0

    # -- signals ------------------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: Any) -> None:
        self._stop = True

    def _on_hup(self, signum: int, frame: Any) -> None:
        self._reload = True

    def _install_signals(self) -> dict[int, Any]:
        previous = {}
        for sig, handler in (
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_hup),
        ):
            previous[sig] = signal.signal(sig, handler)
        return previous

    # -- configuration ------------------------------------------------------------------------

    def _configure(self, manager: Any) -> None:
        """Apply a manager's config: options, notifiers, metrics server (fail fast on errors)."""
        options = MonitorOptions.resolve(manager.config, self._flags)
        if options.metrics_file is not None and not options.metrics_file.parent.is_dir():
            raise NotFoundError(
                f"the metrics file directory {options.metrics_file.parent} does not exist; "
                "create it or choose another --metrics-file"
            )
        dispatcher = build_dispatcher(
            options, home=str(manager.home), env=self._env, backoff=self._backoff
        )
        old = self.options
        server = self.server
        if options.metrics_port is None:
            server = None
        elif (
            server is None
            or old is None
            or (old.metrics_port, old.metrics_bind) != (options.metrics_port, options.metrics_bind)
        ):
            from ekm.monitor.metrics import MetricsServer

            server = MetricsServer(options.metrics_bind, options.metrics_port).start()
            log.info("serving metrics on http://%s:%d/metrics", options.metrics_bind, server.port)
        if self.server is not None and server is not self.server:
            self.server.stop()
        if self.dispatcher is not None:
            self.dispatcher.close(timeout=1.0)
        self.manager, self.options, self.dispatcher, self.server = (
            manager,
            options,
            dispatcher,
            server,
        )
        if self.session is None:
            self.session = MonitorSession(manager)
        else:  # keep open problems and baselines; unlock again with the new manager
            from ekm.monitor.checks import CheckState

            state = self.session.state
            self.session.manager = manager
            self.session.state = CheckState(
                known_keys=state.known_keys, max_audit_seq=state.max_audit_seq
            )

    def _reconfigure(self) -> None:
        self._reload = False
        log.info("SIGHUP: reloading the configuration")
        try:
            self._configure(self._factory())
        except EkmError as exc:
            log.error("reload failed, keeping the previous configuration: %s", exc.message)
            return
        except Exception as exc:  # a bug while reloading must not stop the monitor
            log.error("reload failed (%s), keeping the previous configuration", type(exc).__name__)
            return
        self._notify("RELOADING=0")
        log.info("configuration reloaded (interval %gs)", self.options.interval)

    # -- the loop -----------------------------------------------------------------------------

    def run_pass(self) -> PassResult:
        assert self.session is not None and self.options is not None
        result = self.session.run()
        self.passes += 1
        log_transitions(result)
        publish(self.dispatcher, result, self.options)
        if self.dispatcher is not None:
            failures = self.dispatcher.failures()
            self.session.count(failures)
            if failures:
                result.snapshot = replace(result.snapshot, events=dict(self.session.event_counts))
        if self.server is not None:
            self.server.update(result.snapshot)
        if self.options.metrics_file is not None:
            try:
                write_metrics_file(self.options.metrics_file, result)
            except EkmError as exc:
                log.error("could not write the metrics file: %s", exc.message)
        findings = sum(1 for e in result.events if e.severity > SecurityLevel.INFO)
        self._notify(f"STATUS=pass {self.passes}: {findings} open finding(s)")
        return result

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (0 on a clean stop)."""
        from ekm.monitor.watch import HomeWatcher

        manager = self._factory()
        if not manager.deployed:
            raise NotFoundError(
                f"{manager.home} is not a deployed ekm home (run `ekm deploy`, or pass --home)"
            )
        previous = self._install_signals()
        import faulthandler

        # `kill -USR1 PID` writes every thread's stack to stderr: a hung daemon can be
        # diagnosed without a debugger (stacks hold code locations, never data).
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        watcher = None
        try:
            self._configure(manager)
            watcher = HomeWatcher(manager.home)
            log.info(
                "monitoring %s every %gs (file watch: %s)",
                manager.home,
                self.options.interval,
                watcher.mode,
            )
            self.run_pass()
            self._notify("READY=1")
            watchdog = bool(self._env.get("WATCHDOG_USEC"))
            last = time.monotonic()
            while not self._stop:
                trigger = self._wait(watcher, last, watchdog)
                if self._stop:
                    break
                if self._reload:
                    self._reconfigure()
                if trigger == "change":
                    time.sleep(MIN_GAP)
                self.run_pass()
                last = time.monotonic()
        finally:
            self._notify("STOPPING=1")
            log.info("stopping")
            if watcher is not None:
                watcher.close()
            if self.dispatcher is not None:
                self.dispatcher.close(timeout=DRAIN_ON_STOP)
            if self.server is not None:
                self.server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _wait(self, watcher: Any, last: float, watchdog: bool) -> str:
        """Wait for the interval, a change in the home, or a signal; say which."""
        assert self.options is not None
        deadline = last + self.options.interval
        while not self._stop and not self._reload:
            if watchdog:
                self._notify("WATCHDOG=1")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "interval"
            changed = watcher.wait(min(SLICE, remaining))
            if changed:
                log.debug("changed: %s", ", ".join(os.fspath(p) for p in changed[:10]))
                return "change"
        return "signal"
