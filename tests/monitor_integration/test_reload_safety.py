"""SIGHUP reload: whatever goes wrong while rebuilding, the daemon keeps its configuration."""

from __future__ import annotations

from ekm.manager import KeyManager
from ekm.monitor.daemon import MonitorDaemon


def test_a_reload_that_raises_keeps_the_previous_configuration(home, caplog):
    calls = {"n": 0}

    def factory():
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("boom while reloading")
        return KeyManager(home, env={})

    daemon = MonitorDaemon(factory, {}, env={}, notify=lambda state: None)
    daemon._configure(factory())
    before = daemon.options
    daemon._reconfigure()
    assert daemon.options is before
    assert "reload failed (RuntimeError), keeping the previous configuration" in caplog.text
