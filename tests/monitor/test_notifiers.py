"""Webhook and Slack notifiers and the Dispatcher, against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import BackendError, UsageError
from ekm.monitor.events import Event
from ekm.monitor.notifiers import (
    Dispatcher,
    NotifierError,
    SlackNotifier,
    WebhookNotifier,
    redact_url,
    secret_from_env,
    verify_signature,
)

from .conftest import NOW, make_event

SECRET = b"0123456789abcdef-webhook-secret"


def bodies(receiver) -> list[dict]:
    return [json.loads(r.body) for r in receiver.requests]


# -- webhook -----------------------------------------------------------------------------------


def test_webhook_posts_documented_json_signed_with_hmac(receiver) -> None:
    notifier = WebhookNotifier(receiver.url, secret=SECRET, home="/var/lib/ekm", clock=lambda: 1e9)
    notifier.send(make_event(mode="0644"))
    (req,) = receiver.requests
    assert req.headers["Content-Type"] == "application/json"
    body = json.loads(req.body)
    assert body["version"] == 1 and body["source"] == "ekm" and body["status"] == "firing"
    assert body["home"] == "/var/lib/ekm"
    assert body["event"]["check"] == "files.permissions"
    assert body["event"]["severity"] == "HIGH" and body["event"]["details"] == {"mode": "0644"}
    # An independent check of the documented recipe: HMAC-SHA256(secret, ts + "." + body).
    ts = req.headers["X-Ekm-Timestamp"]
    assert ts == "1000000000"
    want = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Ekm-Signature"] == want
    assert verify_signature(SECRET, req.body, ts, want, now=1e9 + 10)
    # replay later, altered body, wrong secret: all refused
    assert not verify_signature(SECRET, req.body, ts, want, now=1e9 + 301)
    assert not verify_signature(SECRET, req.body + b" ", ts, want, now=1e9)
    assert not verify_signature(b"x" * 32, req.body, ts, want, now=1e9)
    assert not verify_signature(SECRET, req.body, "not-a-number", want, now=1e9)


def test_unsigned_webhook_sends_no_signature(receiver) -> None:
    WebhookNotifier(receiver.url).send(make_event())
    assert "X-Ekm-Signature" not in receiver.requests[0].headers


def test_secret_comes_from_env() -> None:
    assert secret_from_env({"EKM_WEBHOOK_SECRET": "abc"}) == b"abc"
    assert secret_from_env({"EKM_WEBHOOK_SECRET": ""}) is None
    assert secret_from_env({}) is None


@pytest.mark.parametrize(
    ("url", "kwargs", "fragment"),
    [
        ("ftp://example.org/x", {}, "must start with http:// or https://"),
        ("file:///etc/passwd", {}, "must start with http:// or https://"),
        ("https://user:hunter2@example.org/x", {}, "must not embed a user name or password"),
        ("https://example.org/x", {"secret": "hunter2"}, "shorter than 16 bytes"),
    ],
)
def test_webhook_configuration_errors(url: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as info:
        WebhookNotifier(url, **kwargs)
    assert info.value.exit_code == 2
    assert "hunter2" not in str(info.value)


def test_http_errors_are_backend_errors_that_hide_the_url_path(receiver) -> None:
    receiver.statuses = [500, 404]
    notifier = WebhookNotifier(receiver.url)
    with pytest.raises(NotifierError, match=r"HTTP 500: the receiver failed; will retry") as e1:
        notifier.send(make_event())
    assert e1.value.retryable and isinstance(e1.value, BackendError) and e1.value.exit_code == 5
    with pytest.raises(NotifierError, match=r"HTTP 404: check the URL and receiver") as e2:
        notifier.send(make_event())
    assert not e2.value.retryable
    for err in (e1.value, e2.value):
        assert "T0KEN" not in str(err) and "/hook" not in str(err)
    assert redact_url(receiver.url).endswith("/…")


def test_connection_refused_is_retryable(closed_port_url: str) -> None:
    with pytest.raises(NotifierError, match=r"failed: .*; is the receiver up\?") as info:
        WebhookNotifier(closed_port_url, timeout=2).send(make_event())
    assert info.value.retryable


def test_redirects_are_not_followed(receiver) -> None:
    # a 302 must not carry the signed body anywhere else: it is a failure, not a success
    receiver.statuses = [302]
    with pytest.raises(NotifierError, match="HTTP 302"):
        WebhookNotifier(receiver.url, secret=SECRET).send(make_event())


# -- Slack -------------------------------------------------------------------------------------


def test_slack_payload_blocks_and_escaping(receiver) -> None:
    event = make_event(subject="<!channel> & key")
    SlackNotifier(receiver.url, home="/var/lib/ekm").send(event)
    body = bodies(receiver)[0]
    header, section, context = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert "HIGH: files.permissions" in header["text"]["text"]
    fields = [f["text"] for f in section["fields"]]
    assert fields[0] == "*Severity*\nHIGH"
    assert fields[1] == "*Key*\n&lt;!channel&gt; &amp; key"  # no @channel ping from a key name
    assert fields[2] == "*Check*\nfiles.permissions"
    assert context["type"] == "context"
    text = context["elements"][0]["text"]
    assert "home /var/lib/ekm" in text and text.endswith("2030-01-02T03:04:05Z")
    # Slack parses mentions in mrkdwn only; the header is plain_text (shown literally)
    mrkdwn = [section["text"]["text"], *fields, text, body["text"]]
    assert all("<!" not in t for t in mrkdwn)


def test_slack_resolved_notice() -> None:
    body = SlackNotifier("https://hooks.slack.example/services/X").payload(
        make_event().resolve(NOW)
    )
    assert "RESOLVED: files.permissions" in body["blocks"][0]["text"]["text"]


# -- Dispatcher --------------------------------------------------------------------------------


def test_dedup_sends_once_and_a_resolved_notice_when_cleared(receiver) -> None:
    with Dispatcher([WebhookNotifier(receiver.url)], sleep=lambda s: None) as d:
        a, b = make_event(subject="a"), make_event(subject="b")
        assert d.publish([a, b], now=NOW) == [a, b]
        assert d.publish([make_event(subject="a"), make_event(subject="b")], now=NOW) == []
        later = NOW + timedelta(minutes=5)
        sent = d.publish([make_event(subject="a")], now=later)  # b cleared
        assert [(e.subject, e.resolved) for e in sent] == [("b", True)]
        assert d.drain(10)
        assert set(d.open_problems) == {a.fingerprint}
    got = bodies(receiver)
    assert sorted((g["event"]["subject"], g["status"]) for g in got) == [
        ("a", "firing"),
        ("b", "firing"),
        ("b", "resolved"),
    ]
    resolved = next(g for g in got if g["status"] == "resolved")
    assert resolved["event"]["time"] == "2030-01-02T03:09:05Z"
    assert resolved["event"]["fingerprint"] == b.fingerprint


def test_escalation_is_sent_again_and_dedup_off_sends_every_pass(receiver) -> None:
    with Dispatcher([WebhookNotifier(receiver.url)], sleep=lambda s: None) as d:
        d.publish([make_event(severity=SecurityLevel.MEDIUM)], now=NOW)
        assert len(d.publish([make_event(severity=SecurityLevel.CRITICAL)], now=NOW)) == 1
        assert d.publish([make_event(severity=SecurityLevel.MEDIUM)], now=NOW) == []
    with Dispatcher([WebhookNotifier(receiver.url)], dedup=False, sleep=lambda s: None) as d:
        d.publish([make_event()], now=NOW)
        d.publish([make_event()], now=NOW)
        assert d.drain(10)
    assert len(receiver.requests) == 4


def test_retry_after_500_then_200_with_exponential_backoff(receiver, clock) -> None:
    receiver.statuses = [500, 503, 200]
    with Dispatcher(
        [WebhookNotifier(receiver.url)], max_retries=3, backoff=2, sleep=clock.sleep, clock=clock
    ) as d:
        d.publish([make_event()], now=NOW)
        assert d.drain(10)
        assert d.failures() == []
        assert d.delivered == 1
    assert clock.sleeps == [2, 4]
    assert len(receiver.requests) == 3


def test_429_honours_retry_after(receiver, clock) -> None:
    receiver.statuses = [429]
    with Dispatcher(
        [WebhookNotifier(receiver.url)], backoff=1, sleep=clock.sleep, clock=clock
    ) as d:
        d.publish([make_event()], now=NOW)
        assert d.drain(10)
    assert clock.sleeps == [7]


def test_a_notifier_that_gives_up_is_reported_as_an_event(closed_port_url, clock) -> None:
    reported: list[Event] = []
    with Dispatcher(
        [WebhookNotifier(closed_port_url, timeout=2)],
        max_retries=2,
        sleep=clock.sleep,
        clock=clock,
        on_failure=reported.append,
    ) as d:
        event = make_event()
        d.publish([event], now=NOW)
        assert d.drain(30)
        (failure,) = d.failures()
        assert d.failures() == []  # handed over once
        # the lost notice is not considered delivered: the next pass sends it again
        assert d.open_problems == {}
    assert reported == [failure]
    assert failure.check == "notifier.failed" and failure.severity == SecurityLevel.HIGH
    assert failure.subject == "webhook"
    assert "is the receiver up?" in failure.message and "after 3 attempt(s)" in failure.message
    assert failure.details["event_fingerprint"] == event.fingerprint
    assert clock.sleeps == [1, 2]


def test_permanent_errors_are_not_retried(receiver, clock) -> None:
    receiver.statuses = [400]
    with Dispatcher([WebhookNotifier(receiver.url)], sleep=clock.sleep, clock=clock) as d:
        d.publish([make_event()], now=NOW)
        assert d.drain(10)
        (failure,) = d.failures()
    assert "HTTP 400" in failure.message and "after 1 attempt(s)" in failure.message
    assert clock.sleeps == []


def test_a_slow_receiver_does_not_block_publish_nor_other_notifiers(receiver) -> None:
    # The first receiver holds every request until the test releases it. If publish() waited
    # for deliveries, the handler's wait below would time out and record False.
    release = threading.Event()
    waited: list[bool] = []
    receiver.hook = lambda: waited.append(release.wait(20))
    other: list[Event] = []

    class Recorder:
        name = "recorder"

        def send(self, event: Event) -> None:
            other.append(event)

    d = Dispatcher([WebhookNotifier(receiver.url, timeout=30), Recorder()])
    try:
        d.publish([make_event()], now=NOW)
        d.publish([make_event(), make_event(subject="second")], now=NOW)
        assert d.drain(0) is False  # still in flight: publish returned before delivery
        release.set()
        assert d.drain(20)
    finally:
        release.set()
        d.close()
    assert waited == [True, True]
    assert [e.subject for e in other] == ["database_encryption", "second"]


def test_rate_limit_is_a_token_bucket_per_notifier(receiver, clock) -> None:
    with Dispatcher(
        [WebhookNotifier(receiver.url)],
        rate_per_minute=6,
        burst=2,
        sleep=clock.sleep,
        clock=clock,
    ) as d:
        d.publish([make_event(subject=f"k{i}") for i in range(5)], now=NOW)
        assert d.drain(10)
    # two at once (the burst), then one every 10 s (6 per minute); none lost
    assert clock.sleeps == pytest.approx([10, 10, 10])
    assert [b["event"]["subject"] for b in bodies(receiver)] == ["k0", "k1", "k2", "k3", "k4"]


def test_full_queue_drops_and_reports(receiver) -> None:
    release = threading.Event()
    receiver.hook = lambda: release.wait(20)
    d = Dispatcher([WebhookNotifier(receiver.url, timeout=30)], queue_size=1)
    try:
        d.publish([make_event(subject=f"k{i}") for i in range(4)], now=NOW)
        failures = d.failures()
    finally:
        release.set()
        d.close()
    # one in flight, one queued, the rest dropped and reported (at least one)
    assert failures and all("queue is full" in f.message for f in failures)


def test_publish_validation_and_closed_dispatcher() -> None:
    d = Dispatcher([])
    with pytest.raises(UsageError, match="publish\\(\\) takes Events, not str"):
        d.publish(["x"])  # type: ignore[list-item]
    d.close()
    with pytest.raises(UsageError, match="this Dispatcher is closed"):
        d.publish([])
    with pytest.raises(UsageError, match="rate limit must be positive"):
        Dispatcher([WebhookNotifier("http://127.0.0.1:9/x")], rate_per_minute=0)
    with pytest.raises(UsageError, match="max_retries and backoff must be >= 0"):
        Dispatcher([], max_retries=-1)


def test_payload_guard_runs_on_outgoing_bodies() -> None:
    # Even an Event smuggled past its own validation cannot leave with a secret field.
    event = make_event()
    object.__setattr__(event, "details", {"private_key": "x"})
    from ekm.errors import InvalidError

    with pytest.raises(InvalidError, match="looks like a secret field"):
        WebhookNotifier("http://127.0.0.1:9/x").payload(event)
    # Slack messages carry no details at all
    assert "private_key" not in json.dumps(SlackNotifier("http://127.0.0.1:9/x").payload(event))
