"""The monitor's state stays bounded over many passes: it grows with live problems only.

200 in-process passes with time advancing, problems opening and resolving on a new subject
every pass (a planted file, a group-readable file, keys created), alerts delivered to a real
HTTP receiver on 127.0.0.1. After them, every piece of state the monitor keeps between passes
(open problems, de-dup state, event counters, known keys, rate-limit buckets, cached key
documents, delivery failures) is compared with what is live now.
"""

from __future__ import annotations

import socket
from datetime import timedelta

from ekm.crypto.keytypes import SecurityLevel
from ekm.manager import KeyManager
from ekm.monitor.notifiers import Dispatcher, WebhookNotifier
from ekm.monitor.runner import MonitorSession
from ekm.timeutil import utcnow
from tests.monitor_integration.conftest import Sink, free_port

PASSES = 200


def test_state_after_many_passes_is_what_is_live(fhome):
    mgr = KeyManager(fhome, env={})
    sink = Sink(free_port()).start()
    try:
        dispatcher = Dispatcher(
            [WebhookNotifier(sink.url, home=str(fhome))],
            rate_per_minute=1e6,
            burst=1000,
            sleep=lambda s: None,
        )
        session = MonitorSession(mgr)
        start = utcnow()
        keys_dir = fhome / "keys"
        for i in range(PASSES):
            now = start + timedelta(minutes=10 * i)
            (keys_dir / f"junk{i}.txt").write_text("x")  # files.unexpected, a new subject
            (keys_dir / f"junk{i}.txt").chmod(0o600)
            if i:
                (keys_dir / f"junk{i - 1}.txt").unlink()  # ... and the previous one resolves
            if i % 20 == 0:
                mgr.generate(f"k{i}", type="aes-256-gcm", usage="encryption", now=now)
            open_note = fhome / f"note{i}.txt"
            open_note.write_text("n")
            open_note.chmod(0o640 if i % 2 else 0o600)  # files.permissions on every other pass
            result = session.run(now=now)
            dispatcher.publish(result.events, now=now)
            session.count(dispatcher.failures())
            if i % 2:
                open_note.unlink()
        assert dispatcher.drain(30)
        live = {e.fingerprint for e in result.events}
        assert set(session.open) == live
        assert set(dispatcher.open_problems) <= live
        assert len(session.event_counts) <= 3 * len(SecurityLevel)
        names = set(mgr.keystore.names())
        assert session.state.known_keys == names
        assert set(mgr.keystore._docs) <= names and set(mgr.keystore._shared) <= names
        assert len(dispatcher._lanes) == 1
        # Problems did open and resolve on new subjects all along (the test can fail).
        unexpected = [e for e in result.events if e.check == "files.unexpected"]
        assert [e.subject for e in unexpected] == [f"keys/junk{PASSES - 1}.txt"]
        assert len(sink.snapshot()) >= 2 * PASSES - 2
        dispatcher.close()
    finally:
        sink.stop()


def test_delivery_failures_nobody_collects_are_bounded():
    """Before the fix ``Dispatcher._failures`` grew by one event per lost alert until someone
    called failures(); a library caller that never does kept every one of them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    from ekm.monitor.events import Event

    now = utcnow()
    events = [Event("files.unexpected", SecurityLevel.HIGH, f"s{i}", "m", now) for i in range(60)]
    with Dispatcher(
        [WebhookNotifier(dead, timeout=1)],
        max_retries=0,
        max_failures=25,
        rate_per_minute=1e6,
        burst=100,
        sleep=lambda s: None,
    ) as dispatcher:
        dispatcher.publish(events, now=now)
        assert dispatcher.drain(30)
        failures = dispatcher.failures()
    assert len(failures) == 25
    assert dispatcher.failures_dropped == 35
    assert {f.check for f in failures} == {"notifier.failed"}
    assert failures[-1].details["event_subject"] == "s59"  # the newest are kept


def test_max_failures_must_be_positive():
    import pytest

    from ekm.errors import UsageError

    with pytest.raises(UsageError, match="max_failures >= 1"):
        Dispatcher([], max_failures=0)
