"""Operator attestations: controls no tool can see, recorded in the audit log with evidence.

Dual control, custodians' acknowledgements, procedures: ekm cannot observe them, so a rule whose
requirement is ``attestation = true`` passes only while an operator's ``audit.attest`` record
for it is current. The record names who attests, the evidence file's name and SHA-256 (the
file stays with the operator; an auditor compares its hash), and when the attestation expires.

Attestations are read back only from a verified, MAC-checked audit log (``collect``): a line
appended by hand to the log proves nothing. Writing one therefore needs the master key, so the
record carries its MAC at once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ekm.errors import InvalidError, NotFoundError, UsageError
from ekm.timeutil import instant, iso

if TYPE_CHECKING:  # pragma: no cover
    from ekm.manager import KeyManager

DEFAULT_VALIDITY = timedelta(days=365)
MAX_EVIDENCE = 1 << 30  # 1 GiB: hashed in a stream, never loaded whole
_CHUNK = 1 << 20


def attestable(rule_id: str) -> Any:
    """The built-in rule ``rule_id`` if operators attest it; UsageError otherwise."""
    from ekm.compliance.engine import find_rule

    rule = find_rule(rule_id)
    if not any(name == "attestation" for name, _ in rule.checks):
        raise UsageError(
            f"rule {rule_id} is checked by ekm itself, not attested; "
            "see ekm audit --explain " + rule_id
        )
    return rule


def hash_evidence(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size) of the evidence file, read in chunks."""
    try:
        with open(path, "rb") as fh:
            digest = hashlib.sha256()
            size = 0
            while chunk := fh.read(_CHUNK):
                size += len(chunk)
                if size > MAX_EVIDENCE:
                    raise InvalidError(
                        f"{path}: evidence file larger than 1 GiB; attest a digest or an "
                        "index file that names the documents instead"
                    )
                digest.update(chunk)
    except FileNotFoundError:
        raise NotFoundError(f"{path}: evidence file not found; check the --evidence path") from None
    except IsADirectoryError:
        raise InvalidError(f"{path}: is a directory; name one evidence file (an archive)") from None
    except OSError as exc:
        raise InvalidError(f"{path}: cannot read the evidence file ({exc.strerror})") from None
    return digest.hexdigest(), size


def attest(
    mgr: KeyManager,
    rule_id: str,
    *,
    by: str,
    evidence: str | Path,
    valid_for: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record an attestation of ``rule_id`` in the audit log; returns what was recorded."""
    rule = attestable(rule_id)
    who = by.strip()
    if not who or len(who) > 200 or any(ord(c) < 32 for c in who):
        raise UsageError("--by: name the person attesting (1 to 200 printable characters)")
    if valid_for <= timedelta(0):
        raise UsageError("--expires: the attestation must be valid for a positive duration")
    path = Path(evidence)
    sha, size = hash_evidence(path)
    mgr.unlock()  # the record must carry its MAC to count as evidence
    log = mgr.audit_log
    if not log.files():
        raise NotFoundError(
            f"no audit log in {mgr.home}; attestations live in it (run `ekm deploy`)"
        )
    when = instant(now)
    fields = {
        "rule": rule.id,
        "rule_set": rule.rule_set,
        "by": who,
        "evidence": path.name,
        "evidence_sha256": sha,
        "evidence_bytes": size,
        "expires": iso(when + valid_for),
    }
    record = log.append("audit.attest", now=when, **fields)
    return {k: record[k] for k in ("seq", "time", "op", "actor") if k in record} | fields
