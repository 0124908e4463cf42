"""``python -m tests.vault_integration.rotator HOME N``: rotate alpha and beta N times.

One process per home, started twice at once by the concurrency test: the homes have separate
local locks, so only Vault's check-and-set stands between their writes.
"""

from __future__ import annotations

import sys

from ekm.manager import KeyManager


def main() -> None:
    home, n = sys.argv[1], int(sys.argv[2])
    for _ in range(n):
        KeyManager(home).rotate(["alpha", "beta"], force=True)


if __name__ == "__main__":
    main()
