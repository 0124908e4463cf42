"""The Python API: records, rewrap, async, usage counting, the data-key cache, audit policy."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest

from ekm.crypto import envelope
from ekm.errors import IntegrityError, InvalidError, NotFoundError, StateError, UsageError
from ekm.manager import KeyManager


def _ops(home, op: str) -> list[str]:
    return [ln for ln in (home / "audit.log").read_text().splitlines() if f'"op":"{op}"' in ln]


def test_record_round_trip_and_bad_inputs(mgr):
    blob = mgr.encrypt("database_encryption", b"4111-1111", aad=b"users:42:card")
    assert envelope.peek(blob)[:2] == ("database_encryption", 1)
    assert b"4111" not in blob
    assert mgr.decrypt(blob, aad=b"users:42:card") == b"4111-1111"
    for bad, aad in [
        (blob, b"users:43:card"),
        (blob[:-1], b"users:42:card"),
        (blob[:-1] + bytes([blob[-1] ^ 1]), b"users:42:card"),
        (b"", b""),
        (b"\x01garbage" * 10, b""),
    ]:
        with pytest.raises(IntegrityError, match="not authentic"):
            mgr.decrypt(bad, aad=aad)
    with pytest.raises(NotFoundError, match="no key named 'nope'"):
        mgr.encrypt("nope", b"x")
    with pytest.raises(UsageError, match="data encryption needs"):
        mgr.encrypt("hmac", b"x")
    with pytest.raises(InvalidError, match="plaintext must be bytes"):
        mgr.encrypt("session", "text")


def test_rotation_rewrap_destroy_and_disable(mgr, home):
    old = mgr.encrypt("session", b"v1 data")
    mgr.rotate("session", force=True)
    assert mgr.decrypt(old) == b"v1 data"
    new = mgr.rewrap(old)
    assert envelope.peek(new)[1] == 2 and new[-35:] == old[-35:]  # nonce, data, tag
    assert mgr.rewrap(new) == new
    assert mgr.decrypt(new) == b"v1 data"
    mgr.destroy_version("session", 1)
    with pytest.raises(StateError, match="version 1 of key 'session' is destroyed"):
        mgr.decrypt(old)  # even though its data key is in the cache
    assert mgr.decrypt(new) == b"v1 data"
    # the same through a fresh process-like manager
    with pytest.raises(StateError, match="destroyed"):
        KeyManager(home, env={}).decrypt(old)


def test_unknown_version_is_not_found(mgr):
    blob = bytearray(mgr.encrypt("session", b"x"))
    n = blob[1]
    blob[2 + n : 6 + n] = (9).to_bytes(4, "big")
    with pytest.raises(NotFoundError, match="no version 9"):
        mgr.decrypt(bytes(blob))


def test_async_calls_run_on_several_threads(mgr):
    seen: set[str] = set()
    barrier = threading.Barrier(2, timeout=10)
    real = mgr.encrypt

    def spy(*a, **kw):
        seen.add(threading.current_thread().name)
        barrier.wait()  # two calls must be inside encrypt at the same time
        return real(*a, **kw)

    mgr.encrypt = spy

    async def main() -> list[bytes]:
        return await asyncio.gather(
            *(mgr.encrypt_data_async("session", b"%d" % i) for i in range(4))
        )

    blobs = asyncio.run(main())
    assert len(seen) >= 2 and all(n.startswith("ekm-crypto") for n in seen)

    async def back() -> list[bytes]:
        return await asyncio.gather(*(mgr.decrypt_data_async(b) for b in blobs))

    assert asyncio.run(back()) == [b"0", b"1", b"2", b"3"]


def test_usage_count_is_persisted_in_batches_and_released_on_close(home):
    m = KeyManager(home, env={}, cache_config={"enabled": False})
    for _ in range(50):
        m.encrypt("session", b"x")
    stored = KeyManager(home, env={}).key_info("session").version(1).usage_count
    assert 50 <= stored <= 50 + 1024  # reserved ahead, never below the truth
    writes_before = len(_ops(home, "datakey.wrap"))
    assert writes_before == 50  # no cache: one data key, one audit record per record
    m.close()
    assert KeyManager(home, env={}).key_info("session").version(1).usage_count == 50


def test_cache_means_one_wrap_for_many_records(home):
    m = KeyManager(home, env={})
    blobs = [m.encrypt("session", b"r%d" % i) for i in range(200)]
    m.close()
    assert len(_ops(home, "datakey.wrap")) == 1
    assert KeyManager(home, env={}).key_info("session").version(1).usage_count == 1
    fresh = KeyManager(home, env={})
    assert [fresh.decrypt(b) for b in blobs[:50]] == [b"r%d" % i for i in range(50)]
    assert len(_ops(home, "datakey.unwrap")) == 1


def test_usage_warning_and_refusal_at_the_gcm_limit(home):
    m = KeyManager(home, env={})
    m.unlock()
    store = m.keystore
    with store.store.lock():
        key = store.load("session", refresh=True)
        key.version(1).usage_count = 2**32 - 1
        store.save(key)
    m.encrypt("session", b"last one")
    warnings = m.usage_warnings()
    assert len(warnings) == 1 and "rotate it soon" in warnings[0]
    assert _ops(home, "key.usage_warning")
    m2 = KeyManager(home, env={}, cache_config={"enabled": False})
    with pytest.raises(StateError, match="AES-GCM limit of 4294967296; rotate it"):
        m2.encrypt("session", b"one too many")
    m2.rotate("session", force=True)
    assert m2.decrypt(m2.encrypt("session", b"ok")) == b"ok"


def test_stream_api_and_recipient_file(mgr, tmp_path):
    src, dst = io.BytesIO(b"a" * 100_000), io.BytesIO()
    mgr.encrypt_stream(src, dst, "session", aad="ctx")
    out = io.BytesIO()
    dst.seek(0)
    assert mgr.decrypt_stream(dst, out, aad="ctx") == 100_000
    for name in ("inbox_x25519", "inbox_mlkem", "inbox_hybrid"):
        target = tmp_path / f"{name}.ekm"
        mgr.encrypt_file(io.BytesIO(b"secret"), target, recipients=[name])
        mgr.decrypt_file(target, tmp_path / f"{name}.out")
        assert (tmp_path / f"{name}.out").read_bytes() == b"secret"
    with pytest.raises(InvalidError, match="sealed to recipient"):
        mgr.rewrap_file(tmp_path / "inbox_hybrid.ekm")


def test_cache_config_and_legacy_cache_config(home):
    assert KeyManager(home, env={}, cache_config={"enabled": False}).dek_cache is None
    c = KeyManager(home, env={}, cache_config={"max_size": 7, "ttl_seconds": 9}).dek_cache
    assert (c.max_size, c.ttl_seconds) == (7, 9.0)
    assert not list(home.rglob("*cache*"))  # never on disk
