"""DataKeyCache: bounded by size, age and uses; thread-safe; clock injected, never patched."""

from __future__ import annotations

import threading

import pytest

from ekm.crypto.dekcache import DataKeyCache
from ekm.errors import InvalidError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_encryption_entry_counts_uses_and_retires():
    c = DataKeyCache(max_size=8, ttl_seconds=60, max_messages=3, clock=Clock())
    c.put_encryption_key("k", 1, b"d" * 32, b"w", aead="A")
    assert c.take_encryption_key("k", 1) == (b"d" * 32, b"w", "A")
    assert c.take_encryption_key("k", 1) is not None  # third use overall
    assert c.take_encryption_key("k", 1) is None  # retired after max_messages


def test_ttl_expiry_uses_injected_clock():
    clock = Clock()
    c = DataKeyCache(max_size=8, ttl_seconds=10, max_messages=100, clock=clock)
    c.put_encryption_key("k", 1, b"d" * 32, b"w")
    clock.t += 9.9
    assert c.take_encryption_key("k", 1) is not None
    assert c.get_decryption_key("k", 1, b"w") == b"d" * 32
    clock.t += 0.1
    assert c.take_encryption_key("k", 1) is None
    assert c.get_decryption_key("k", 1, b"w") is None


def test_clock_going_backwards_drops_entry():
    c = DataKeyCache(max_size=8, ttl_seconds=10, max_messages=100)
    c.put_decryption_key("k", 1, b"w", b"d", now=100.0)
    assert c.get_decryption_key("k", 1, b"w", now=50.0) is None


def test_lru_bound():
    c = DataKeyCache(max_size=2, ttl_seconds=60, max_messages=10, clock=Clock())
    c.put_decryption_key("k", 1, b"a", b"A")
    c.put_decryption_key("k", 1, b"b", b"B")
    assert c.get_decryption_key("k", 1, b"a") == b"A"  # a is now most recent
    c.put_decryption_key("k", 1, b"c", b"C")
    assert len(c) == 2
    assert c.get_decryption_key("k", 1, b"b") is None
    assert c.get_decryption_key("k", 1, b"a") == b"A"


def test_forget_and_clear():
    c = DataKeyCache(clock=Clock())
    c.put_decryption_key("k", 1, b"a", b"A")
    c.put_decryption_key("k", 2, b"b", b"B")
    c.put_decryption_key("j", 1, b"c", b"C")
    c.forget("k", 1)
    assert c.get_decryption_key("k", 1, b"a") is None
    assert c.get_decryption_key("k", 2, b"b") == b"B"
    c.forget("k")
    assert len(c) == 1
    c.clear()
    assert len(c) == 0


def test_repr_has_no_key_bytes():
    c = DataKeyCache(clock=Clock())
    c.put_decryption_key("k", 1, b"w", b"SECRETDEK")
    assert "SECRETDEK" not in repr(c) and "entries=1" in repr(c)


@pytest.mark.parametrize("args", [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_parameters(args):
    with pytest.raises(InvalidError, match="must all be positive"):
        DataKeyCache(*args)


def test_concurrent_takes_never_exceed_max_messages():
    c = DataKeyCache(max_size=4, ttl_seconds=60, max_messages=1000, clock=Clock())
    c.put_encryption_key("k", 1, b"d", b"w")
    hits = []

    def worker() -> None:
        n = 0
        for _ in range(500):
            if c.take_encryption_key("k", 1) is not None:
                n += 1
        hits.append(n)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(hits) == 999  # 1000 uses in total, the put counted as the first
