"""Notifiers (webhook, Slack) and the :class:`Dispatcher` that feeds them.

Design choices, each for a reason:

- Payloads are built from :class:`~ekm.monitor.events.Event` fields only and pass
  :func:`~ekm.monitor.events.check_payload_safe` before they leave, so no code path can attach
  key material to an alert.
- Webhook URLs (Slack's in particular) embed a credential in their path: messages and events name
  only the scheme and host of a URL, never the full URL.
- Delivery happens on one background worker per notifier with a bounded queue: a receiver that
  is slow or down never blocks the checks, and never delays the other notifiers. A full queue
  drops the delivery and reports it.
- Retries use exponential backoff; the sleep and the clock are parameters so tests run with no
  real waiting. A notifier that gives up is reported as an Event of its own (``notifier.failed``).
- De-duplication: the same open problem (same fingerprint) is sent once, when it opens, and a
  "resolved" notice is sent when a later pass no longer reports it.
- Rate limiting: a token bucket per notifier; when it is empty the worker waits for a token
  (alerts are delayed, not lost; the bounded queue limits how far they can pile up).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import BackendError, UsageError
from ekm.monitor.events import Event, check_payload_safe
from ekm.timeutil import instant, iso, utcnow

log = logging.getLogger("ekm.monitor.notifiers")

SIGNATURE_HEADER = "X-Ekm-Signature"
TIMESTAMP_HEADER = "X-Ekm-Timestamp"
DELIVERY_HEADER = "X-Ekm-Delivery"
SECRET_ENV = "EKM_WEBHOOK_SECRET"  # noqa: S105 (the variable name, not a secret)
PAYLOAD_VERSION = 1
SIGNATURE_TOLERANCE = 300  # seconds a receiver accepts between our timestamp and its clock
_MAX_RESPONSE = 64 * 1024  # we read (and discard) at most this much of a receiver's answer


class NotifierError(BackendError):
    """A delivery failed (exit 5). ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(Protocol):
    """Something that delivers one event; raises NotifierError when it cannot."""

    name: str

    def send(self, event: Event) -> None: ...


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…``: scheme and host only (paths and queries hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def _check_url(url: str, what: str) -> str:
    if not isinstance(url, str):
        raise UsageError(f"the {what} URL must be text such as https://example.org/hook")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"the {what} URL must start with http:// or https:// and name a host "
            f"(got scheme {parts.scheme or 'none'!r})"
        )
    if parts.username or parts.password:
        raise UsageError(
            f"the {what} URL must not embed a user name or password; "
            "use the signing secret (EKM_WEBHOOK_SECRET) instead"
        )
    return url.strip()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Ekm-Signature`` value: ``sha256=`` + HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps (replays)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def secret_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The webhook signing secret from ``EKM_WEBHOOK_SECRET`` (None when unset or empty)."""
    value = (os.environ if env is None else env).get(SECRET_ENV, "")
    return value.encode() if value else None


def _opener() -> Any:
    """A urllib opener that does not follow redirects: a redirect could carry a signed body
    (or a Slack token) to a host the operator never configured."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float, label: str) -> None:
    """POST ``body``; map every failure to a NotifierError without echoing the URL or body."""
    import urllib.error
    import urllib.request

    # The scheme was checked (http/https only) when the notifier was built.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    where = redact_url(url)
    try:
        with _opener().open(request, timeout=timeout) as response:
            response.read(_MAX_RESPONSE)
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        exc.close()
        retryable = status >= 500 or status in (408, 425, 429)
        hint = "the receiver failed; will retry" if retryable else "check the URL and receiver"
        raise NotifierError(
            f"{label} delivery to {where} got HTTP {status}: {hint}",
            retryable=retryable,
            retry_after=retry_after,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout | TimeoutError):
            text = f"no answer within {timeout:g}s"
        else:
            text = getattr(reason, "strerror", None) or type(reason).__name__
        raise NotifierError(
            f"{label} delivery to {where} failed: {text}; is the receiver up?", retryable=True
        ) from None
    if not 200 <= status < 300:
        raise NotifierError(
            f"{label} delivery to {where} got HTTP {status}; expected 2xx", retryable=False
        )


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class WebhookNotifier:
    """POST each event as JSON (shape in docs/monitoring.md), optionally HMAC-signed.

    The signature covers the timestamp and the body, so a captured request cannot be replayed
    later (receivers refuse timestamps older than a few minutes) nor altered.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: bytes | str | None = None,
        timeout: float = 5,
        home: str | None = None,
        name: str = "webhook",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = _check_url(url, "webhook")
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and len(secret) < 16:
            raise UsageError(
                "the webhook signing secret is shorter than 16 bytes; use a random value "
                "such as the output of: openssl rand -hex 32"
            )
        self._secret = secret
        self.timeout = timeout
        self.home = home
        self.name = name
        self._clock = clock

    def __repr__(self) -> str:  # never the URL path nor the secret
        signed = "signed" if self._secret else "unsigned"
        return f"WebhookNotifier({redact_url(self.url)}, {signed})"

    def payload(self, event: Event) -> dict[str, Any]:
        """The JSON document sent for ``event`` (built from Event fields only)."""
        body = {
            "version": PAYLOAD_VERSION,
            "source": "ekm",
            "status": "resolved" if event.resolved else "firing",
            "host": socket.gethostname(),
            "home": self.home,
            "event": event.to_dict(),
        }
        check_payload_safe(body)
        return body

    def body(self, event: Event) -> bytes:
        return json.dumps(self.payload(event), sort_keys=True, separators=(",", ":")).encode()

    def headers(self, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ekm-monitor",
            DELIVERY_HEADER: str(uuid.uuid4()),
        }
        if self._secret:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        return headers

    def send(self, event: Event) -> None:
        body = self.body(event)
        _post(self.url, body, self.headers(body), self.timeout, "webhook")


_ICONS = {
    SecurityLevel.CRITICAL: "\U0001f534",  # red circle
    SecurityLevel.HIGH: "\U0001f7e0",  # orange circle
    SecurityLevel.MEDIUM: "\U0001f7e1",  # yellow circle
    SecurityLevel.LOW: "\U0001f535",  # blue circle
    SecurityLevel.INFO: "\u26aa",  # white circle
}


def _mrkdwn(text: str, limit: int) -> str:
    """Escape Slack control characters so a hostile key name cannot write ``<!channel>``."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackNotifier:
    """Post to a Slack incoming webhook with Block Kit: header, fields section, context."""

    def __init__(
        self, url: str, *, timeout: float = 5, home: str | None = None, name: str = "slack"
    ) -> None:
        self.url = _check_url(url, "Slack webhook")
        self.timeout = timeout
        self.home = home
        self.name = name

    def __repr__(self) -> str:
        return f"SlackNotifier({redact_url(self.url)})"

    def payload(self, event: Event) -> dict[str, Any]:
        """The incoming-webhook JSON for ``event`` (Slack limits: header 150, fields 2000)."""
        state = "RESOLVED" if event.resolved else event.severity.name
        icon = "\u2705" if event.resolved else _ICONS[event.severity]
        title = f"{icon} {state}: {event.check} on {event.subject}"
        home = self.home or "-"
        body = {
            "text": _mrkdwn(f"[ekm] {state} {event.check} {event.subject}: {event.message}", 3000),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": _mrkdwn(event.message, 3000)},
                    "fields": [
                        {"type": "mrkdwn", "text": f"*Severity*\n{event.severity.name}"},
                        {"type": "mrkdwn", "text": "*Key*\n" + _mrkdwn(event.subject, 1900)},
                        {"type": "mrkdwn", "text": "*Check*\n" + _mrkdwn(event.check, 1900)},
                    ],
                },
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": _mrkdwn(f"home {home} on {socket.gethostname()}", 1000)
                            + f" | {iso(event.time)}",
                        }
                    ],
                },
            ],
        }
        check_payload_safe(body)
        return body

    def send(self, event: Event) -> None:
        body = json.dumps(self.payload(event)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "ekm-monitor"}
        _post(self.url, body, headers, self.timeout, "Slack")


class TokenBucket:
    """``rate_per_minute`` tokens per minute, holding at most ``burst``; clock injectable."""

    def __init__(self, rate_per_minute: float, burst: int, clock: Callable[[], float]) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise UsageError("the notifier rate limit must be positive (events per minute)")
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> float:
        """Take a token; return 0, or the seconds to wait before trying again."""
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class _Lane:
    """One notifier with its queue, bucket and worker thread."""

    notifier: Any
    queue: queue.Queue[Event | None]
    bucket: TokenBucket
    thread: threading.Thread | None = None


class Dispatcher:
    """Publish each monitoring pass to the notifiers, de-duplicated, rate-limited and retried.

    ``publish(events)`` takes every problem observed in one pass: new fingerprints are sent,
    ongoing ones are not (with ``dedup``), and problems open before but absent now get a
    "resolved" notice. It only enqueues; the deliveries happen on worker threads.
    """

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        *,
        dedup: bool = True,
        rate_per_minute: float = 30,
        burst: int | None = None,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        queue_size: int = 256,
        sleep: Callable[[float], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[Event], Any] | None = None,
        max_failures: int = 1000,
    ) -> None:
        if max_retries < 0 or backoff < 0 or queue_size < 1 or max_failures < 1:
            raise UsageError(
                "max_retries and backoff must be >= 0, queue_size and max_failures >= 1"
            )
        self.dedup = dedup
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        # The default sleep wakes up on close(), so shutting down never waits out a backoff.
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._clock = clock
        self._on_failure = on_failure
        self._open: dict[str, Event] = {}
        # Kept until failures() is called; bounded, since a library caller may never call it
        # while a receiver stays down for weeks. ``failures_dropped`` counts what was cut.
        self._failures: deque[Event] = deque(maxlen=max_failures)
        self.failures_dropped = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        self._closed = False
        self.delivered = 0
        self._lanes = [
            _Lane(n, queue.Queue(queue_size), TokenBucket(rate_per_minute, burst or 10, clock))
            for n in notifiers
        ]
        for lane in self._lanes:
            lane.thread = threading.Thread(
                target=self._work,
                args=(lane,),
                name=f"ekm-notify-{lane.notifier.name}",
                daemon=True,
            )
            lane.thread.start()

    # -- public API ---------------------------------------------------------------------------

    @property
    def open_problems(self) -> dict[str, Event]:
        """Fingerprint -> the event that opened each problem still open."""
        with self._lock:
            return dict(self._open)

    def publish(self, events: Iterable[Event], *, now: datetime | None = None) -> list[Event]:
        """Enqueue this pass's new problems and resolved notices; return what was enqueued."""
        if self._closed:
            raise UsageError("this Dispatcher is closed; create a new one")
        now = instant(now)
        current: dict[str, Event] = {}
        explicit_resolved: dict[str, Event] = {}
        for event in events:
            if not isinstance(event, Event):
                raise UsageError(f"publish() takes Events, not {type(event).__name__}")
            (explicit_resolved if event.resolved else current)[event.fingerprint] = event
        if not self.dedup:
            outgoing = [*current.values(), *explicit_resolved.values()]
        else:
            with self._lock:
                # New problems, and open ones that got worse (MEDIUM -> CRITICAL is news).
                outgoing = [
                    e
                    for fp, e in current.items()
                    if fp not in self._open or e.severity > self._open[fp].severity
                ]
                for fp, opened in list(self._open.items()):
                    if fp not in current:
                        outgoing.append(explicit_resolved.get(fp) or opened.resolve(now))
                        del self._open[fp]
                for fp, e in current.items():
                    if fp not in self._open or e.severity > self._open[fp].severity:
                        self._open[fp] = e
        for event in outgoing:
            self._enqueue(event)
        return outgoing

    def failures(self) -> list[Event]:
        """The ``notifier.failed`` events since the last call (and forget them)."""
        with self._lock:
            out = list(self._failures)
            self._failures.clear()
        return out

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery is done (sent or given up); True if it was."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the workers."""
        if self._closed:
            return
        self.drain(timeout)
        self._closed = True
        self._stop.set()
        for lane in self._lanes:
            # Workers skip whatever is still queued once stopped, so this put soon has room.
            with contextlib.suppress(queue.Full):
                lane.queue.put(None, timeout=timeout)
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(timeout)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _enqueue(self, event: Event) -> None:
        for lane in self._lanes:
            with self._lock:
                self._inflight += 1
            try:
                lane.queue.put_nowait(event)
            except queue.Full:
                self._done()
                self._report(
                    lane.notifier,
                    event,
                    f"{lane.notifier.name} queue is full ({lane.queue.maxsize} pending); "
                    "an alert was dropped: check the receiver",
                    attempts=0,
                )

    def _done(self) -> None:
        with self._idle:
            self._inflight -= 1
            if not self._inflight:
                self._idle.notify_all()

    def _work(self, lane: _Lane) -> None:
        while True:
            event = lane.queue.get()
            if event is None:
                return
            if self._stop.is_set():  # closing: what did not go out in time is not sent
                self._done()
                continue
            try:
                self._deliver(lane, event)
            except Exception as exc:  # a bug in a notifier must not kill its worker
                self._report(lane.notifier, event, f"{type(exc).__name__} in notifier", 1)
            finally:
                self._done()

    def _deliver(self, lane: _Lane, event: Event) -> None:
        while (wait := lane.bucket.take()) > 0:
            if self._stop.is_set():
                return
            self._sleep(wait)
        attempts = 0
        while True:
            attempts += 1
            try:
                lane.notifier.send(event)
            except NotifierError as exc:
                if not exc.retryable or attempts > self.max_retries or self._stop.is_set():
                    self._report(lane.notifier, event, exc.message, attempts)
                    return
                delay = min(self.max_backoff, self.backoff * 2 ** (attempts - 1))
                if exc.retry_after is not None:
                    delay = min(self.max_backoff, max(delay, exc.retry_after))
                log.warning("%s (attempt %d); retrying in %gs", exc.message, attempts, delay)
                self._sleep(delay)
                continue
            with self._lock:
                self.delivered += 1
            return

    def _report(self, notifier: Any, event: Event, reason: str, attempts: int) -> None:
        failure = Event(
            check="notifier.failed",
            severity=SecurityLevel.HIGH,
            subject=notifier.name,
            message=f"{reason} (gave up after {attempts} attempt(s))",
            time=utcnow(),
            details={
                "notifier": notifier.name,
                "attempts": attempts,
                "event_check": event.check,
                "event_subject": event.subject,
                "event_fingerprint": event.fingerprint,
            },
        )
        log.error("%s", failure.message)
        with self._lock:
            if len(self._failures) == self._failures.maxlen:
                self.failures_dropped += 1
            self._failures.append(failure)
            # At-least-once: a problem whose notice was lost is forgotten, so the next pass
            # that still sees it sends it again instead of treating it as already known.
            if not event.resolved and self._open.get(event.fingerprint) is event:
                del self._open[event.fingerprint]
        if self._on_failure is not None:
            try:
                self._on_failure(failure)
            except Exception as exc:
                log.error("notifier failure callback raised %s", type(exc).__name__)
