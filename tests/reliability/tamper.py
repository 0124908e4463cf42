"""Byte-flip tamper detection: for each byte of a file, flip it, ask ekm, restore it.

``flips(data, rng, sample)`` yields (offset, mask) pairs: every offset with mask 0x01 (the
smallest change a bit-rot or an editor makes; for files over 1 KiB a random sample of 300
offsets unless EKM_TAMPER_FULL=1), plus ``sample`` random offsets with random
non-zero masks. A ``Detector`` opens the tampered file the way an unlocking command does and
returns the EkmError it raised (or None when the change was accepted).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ekm.errors import EkmError

Detector = Callable[[], EkmError | None]


#: Files up to this size get every byte flipped; larger ones a random sample of offsets
#: (the suite must stay fast). EKM_TAMPER_FULL=1 flips every byte of every file.
FULL_SWEEP_BYTES = 1024
LARGE_FILE_OFFSETS = 300


def flips(data: bytes, rng: random.Random, sample: int) -> Iterator[tuple[int, int]]:
    full = os.environ.get("EKM_TAMPER_FULL") == "1" or len(data) <= FULL_SWEEP_BYTES
    offsets = range(len(data)) if full else rng.sample(range(len(data)), LARGE_FILE_OFFSETS)
    for offset in offsets:
        yield offset, 0x01
    for _ in range(sample if data else 0):
        yield rng.randrange(len(data)), rng.randrange(1, 256)


@dataclass
class FlipReport:
    """Counts per outcome and the accepted flips (offset, mask, byte before/after)."""

    path: str
    tried: int = 0
    by_code: dict[int, int] = field(default_factory=dict)
    accepted: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)


def sweep(path: Path, detect: Detector, *, names: tuple[str, ...], sample: int = 64) -> FlipReport:
    """Flip every byte of ``path`` (and a random sample), run ``detect`` for each, restore.

    A detection must be an EkmError whose message names one of ``names`` (the file, so an
    operator knows what to restore); anything else is recorded in the report.
    """
    original = path.read_bytes()
    report = FlipReport(str(path))
    rng = random.Random(f"tamper-{path.name}")
    try:
        for offset, mask in flips(original, rng, sample):
            tampered = bytearray(original)
            tampered[offset] ^= mask
            path.write_bytes(bytes(tampered))
            report.tried += 1
            exc = detect()
            if exc is None:
                report.accepted.append(
                    (
                        offset,
                        mask,
                        original[offset : offset + 1],
                        bytes(tampered[offset : offset + 1]),
                    )
                )
                continue
            report.by_code[exc.exit_code] = report.by_code.get(exc.exit_code, 0) + 1
            if not any(n in exc.message for n in names):
                report.unnamed.append(exc.message)
    finally:
        path.write_bytes(original)
    tally = os.environ.get("EKM_TAMPER_TALLY")  # long runs: one line per file, for the README
    if tally:
        with open(tally, "a") as fh:
            fh.write(f"{path.name}\t{report.tried}\t{len(report.accepted)}\n")
    return report
