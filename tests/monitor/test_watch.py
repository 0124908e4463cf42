"""HomeWatcher: real inotify and the polling fallback see chmod, writes, deletes and moves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ekm.errors import NotFoundError
from ekm.monitor.watch import HomeWatcher

WAIT = 10.0  # upper bound only: wait() returns as soon as something changed


@pytest.fixture(params=["inotify", "poll"])
def watched(request, tmp_path: Path) -> Iterator[tuple[HomeWatcher, Path]]:
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "k.json").write_text("{}")
    (home / "ekm.toml").write_text("")
    try:
        watcher = HomeWatcher(home, use_inotify=request.param == "inotify", poll_interval=0.02)
    except NotFoundError:
        pytest.skip("inotify is not available on this system")
    assert watcher.mode == request.param
    yield watcher, home
    watcher.close()


def changed_within(watcher: HomeWatcher, target: Path) -> set[Path]:
    """Wait until ``target`` is reported (events of the set-up may arrive first)."""
    seen: set[Path] = set()
    for _ in range(20):
        batch = watcher.wait(WAIT)
        assert batch, "no change reported"
        seen.update(batch)
        if target in seen:
            return seen
    raise AssertionError(f"{target} never reported; saw {sorted(seen)}")


def test_chmod_is_reported(watched) -> None:
    watcher, home = watched
    target = home / "keys" / "k.json"
    os.chmod(target, 0o644)
    assert target in changed_within(watcher, target)


def test_write_delete_and_move(watched) -> None:
    watcher, home = watched
    (home / "ekm.toml").write_text("tampered = true\n")
    changed_within(watcher, home / "ekm.toml")
    (home / "keys" / "k.json").unlink()
    changed_within(watcher, home / "keys" / "k.json")
    os.rename(home / "ekm.toml", home / "moved.toml")
    seen = changed_within(watcher, home / "moved.toml")
    assert home / "ekm.toml" in seen | set(watcher.wait(0.2))


def test_new_subdirectories_are_watched(watched) -> None:
    watcher, home = watched
    sub = home / "backups"
    sub.mkdir()
    changed_within(watcher, sub)
    (sub / "b1").write_text("x")
    changed_within(watcher, sub / "b1")


def test_nothing_changed_returns_empty(watched) -> None:
    watcher, _ = watched
    assert watcher.wait(0.05) == []


def test_symlinked_directories_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (home / "link").symlink_to(outside)
    with HomeWatcher(home, use_inotify=False, poll_interval=0.02) as watcher:
        (outside / "f").write_text("x")
        assert watcher.wait(0.1) == []


def test_missing_home_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="is not a directory \\(run ekm deploy\\)") as info:
        HomeWatcher(tmp_path / "absent")
    assert info.value.exit_code == 3


def test_falls_back_to_polling_when_inotify_cannot_cover_the_tree(
    tmp_path: Path, monkeypatch
) -> None:
    import ekm.monitor.watch as watch

    (tmp_path / "a").mkdir()
    monkeypatch.setattr(watch, "MAX_WATCHES", 1)  # two directories, room for one watch
    with HomeWatcher(tmp_path, poll_interval=0.02) as watcher:
        assert watcher.mode == "poll"
        os.chmod(tmp_path / "a", 0o700)
        assert tmp_path / "a" in watcher.wait(WAIT)
    with pytest.raises(NotFoundError, match="inotify is unavailable here \\(OSError\\)"):
        HomeWatcher(tmp_path, use_inotify=True)
