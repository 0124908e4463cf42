"""Review fix: ekm.toml decides where secrets go (Vault endpoint, HSM module, webhook URLs),
so a config file others may edit, a FIFO or an oversized file is refused, as ssh refuses a
writable ~/.ssh/config."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ekm import config as cfgmod
from ekm.errors import ConfigError, UnsafePermissionsError


def _toml(tmp_path: Path, mode: int = 0o644, text: str = '[monitor]\ninterval = "60s"\n') -> Path:
    path = tmp_path / "ekm.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_world_readable_config_is_still_accepted(tmp_path: Path) -> None:
    cfg = cfgmod.load(_toml(tmp_path, 0o644))
    assert cfg.get("monitor", "interval") == "60s"


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_config_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _toml(tmp_path, mode)
    with pytest.raises(UnsafePermissionsError) as err:
        cfgmod.load(path)
    assert err.value.message == (
        f"{path} has mode {mode:04o}; group or others can change it (run: chmod go-w {path})"
    )
    assert err.value.exit_code == 4


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_config_owned_by_another_user_is_refused() -> None:
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="ekm-review-"))  # /tmp: the child uid can reach it
    try:
        os.chmod(where, 0o755)  # noqa: S103 (the other uid must traverse it; test only)
        path = _toml(where, 0o644)
        os.chown(path, 4242, 4242)
        # root's own and root-owned files are accepted: read it as a third uid in a child
        got = _as_uid(1234, lambda: cfgmod.load(path))
    finally:
        shutil.rmtree(where)
    assert got == (
        "UnsafePermissionsError: "
        f"{path} is owned by uid 4242, not by the user running ekm (1234) or root"
    )


def _as_uid(uid: int, fn: Callable[[], object]) -> str:
    """Run ``fn`` in a forked child with effective uid ``uid``: "Type: message" or "ok"."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            os.seteuid(uid)
            fn()
            out = "ok"
        except BaseException as exc:  # reported to the parent as text
            out = f"{type(exc).__name__}: {exc}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        got = fh.read().decode()
    os.waitpid(pid, 0)
    return got


def test_config_fifo_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "ekm.toml"
    os.mkfifo(path, 0o600)
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            cfgmod.load(path)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(30)  # a hang guard, not a timing assertion
    if t.is_alive():  # release it (the pre-fix behaviour), then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        t.join(30)
        pytest.fail("loading a FIFO config blocked")
    assert isinstance(box.get("error"), ConfigError)
    assert str(box["error"]) == f"{path}: not a regular file; expected a TOML file"


def test_config_directory_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ekm.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match=r"not a regular file|a directory"):
        cfgmod.load(path)


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    path = _toml(tmp_path, 0o600, "# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="config file is larger than 1 MiB; refusing to parse"):
        cfgmod.load(path)


def test_missing_optional_config_gives_defaults(tmp_path: Path) -> None:
    cfg = cfgmod.load(tmp_path / "none.toml", required=False)
    assert cfg.path is None


def test_cli_refuses_a_group_writable_config(home: Path, run: Callable) -> None:
    path = _toml(home, 0o620)
    run("--config", str(path), "status").expect_error(4, "group or others can change it")
