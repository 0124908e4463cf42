"""Security reports as a KeyManager operation (a mixin of :class:`ekm.manager.KeyManager`).

``security_report`` returns the :class:`ReportData` every format renders, so ``--format json``
and the HTML/PDF/Markdown documents show the same numbers. It also keeps the baseline for
"what changed": the data of the last report is stored as ``state/last-report.json`` (0600,
written atomically) and the next report is diffed against it.

Why a report is audit-logged (op ``report``): a report names every key and finding of the
home; who produced one, and when, is part of the evidence trail. Fail closed as everywhere:
when the record cannot be written, no report is produced.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ekm.errors import EkmError, InvalidError, UsageError
from ekm.timeutil import instant, iso

if TYPE_CHECKING:  # pragma: no cover
    from ekm.report.baseline import Baseline
    from ekm.report.model import ReportData

BASELINE_NAME = "last-report.json"
#: A slim baseline of 10,000 keys and 70,000 findings is about 2 MB; the bound is kept at the
#: old whole-report size so a baseline written by an earlier ekm is still read (once).
MAX_BASELINE_BYTES = 64 * 1024 * 1024


class ReportOps:
    """``security_report()`` and the stored baseline for :class:`KeyManager`."""

    # Provided by KeyManager.
    home: Path
    layout: Any
    config: Any
    audit_log: Any

    if TYPE_CHECKING:  # pragma: no cover - implemented by KeyManager / AuditOps

        def audit_collected(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]: ...
        def list_keys(self) -> list[Any]: ...

    @property
    def report_baseline_path(self) -> Path:
        """Where the last report's data is kept (the "since" of the next one)."""
        return self.layout.state_dir / BASELINE_NAME

    def last_report(self) -> Baseline | None:
        """The stored baseline, or None; a damaged or hostile file is an InvalidError (exit 3).

        A whole report stored by an earlier ekm is accepted (read with the report parser's
        strictness); the next save replaces it with the slim form.
        """
        from ekm.fsutil import read_private
        from ekm.report.baseline import parse_baseline

        path = self.report_baseline_path
        if not path.exists():
            return None
        try:
            return parse_baseline(
                json.loads(read_private(path, limit=MAX_BASELINE_BYTES, home=self.home))
            )
        except (ValueError, RecursionError):
            problem = "is not JSON"
        except InvalidError as exc:
            problem = exc.message.split(";")[0]
        raise InvalidError(
            f"{path}: {problem}; remove the file to start a new baseline (the next report "
            "then has no 'changes since')"
        )

    def security_report(
        self,
        since: datetime | None = None,
        as_of: datetime | None = None,
        compliance: str | list[str] = "all",
        *,
        now: datetime | None = None,
        save: bool | None = None,
    ) -> ReportData:
        """Everything one security report shows, computed once for every format.

        ``as_of`` (default ``now``) is the report's instant: dueness and rules are judged then.
        ``since`` starts the period; without it the period starts where the last stored report
        ended (else 30 days before ``as_of``). Changes are the diff against the stored report,
        or, with ``since``, the keys added and rotated after it (from the keystore itself).
        ``save`` (default: only when ``as_of`` is not given, so a preview never becomes the
        baseline) stores this report as the next baseline. Writes an audit record (``report``).
        """
        from ekm import __version__
        from ekm.report import collect
        from ekm.report.changes import diff_reports
        from ekm.report.model import Changes, ReportData

        now = (instant(now)).replace(microsecond=0)
        when = (as_of or now).replace(microsecond=0)
        if save is None:
            save = as_of is None
        previous = self.last_report()
        start = since
        if start is None:
            start = when - collect.DEFAULT_PERIOD
            if previous is not None and previous.period_end <= when:
                start = previous.period_end
        if start > when:
            raise UsageError(
                f"--since {iso(start)} is after the report's end {iso(when)}; pass an "
                "earlier --since or a later --as-of"
            )
        if self.audit_log.files():  # fail closed before the work, not after it
            self.audit_log.ensure_writable()
        result, got = self.audit_collected(compliance, None, when, now=now, record=False)
        keys = self.list_keys()
        summaries, findings = collect.compliance_rows(result)
        # the audit walked the chain already; a 100,000-record log is not walked twice
        verified = got.log_verify or self.audit_log.verify()
        activity, alerts = collect.scan_log(self.audit_log.records(), start, when)
        data = ReportData(
            generated_at=now,
            period_start=start,
            period_end=when,
            ekm_version=__version__,
            home=str(self.home),
            config_fingerprint=collect.config_fingerprint(self.config.path),
            audit_log=collect.log_summary(verified),
            keys=collect.key_rows(keys, when),
            compliance=summaries,
            findings=findings,
            activity=activity,
            alerts=alerts,
        )
        if since is not None:
            data.changes = collect.changes_since(keys, since, when)
        elif previous is not None:
            data.changes = diff_reports(previous, data)
        else:
            data.changes = Changes()
        data.validate()
        self._record_report(data, result, verified.ok)
        if save:
            self._save_baseline(data)
        return data

    def _record_report(self, data: ReportData, result: Any, chain_ok: bool) -> None:
        """The ``report`` audit record; best effort only when the chain is already broken.

        A missing log is not recreated (a fresh chain would verify and hide the deletion).
        Appending to a broken chain would not repair it, and refusing the report would hide
        the one document that says it is broken.
        """
        totals = data.totals()
        log = self.audit_log
        if not log.files():
            return  # never start a fresh chain where the report found the log missing
        try:
            log.append(
                "report",
                rule_sets=",".join(rs.id for rs in result.rule_sets),
                period_start=iso(data.period_start),
                as_of=iso(data.period_end),
                keys=totals.keys,
                findings=totals.findings,
                now=data.generated_at,
            )
        except EkmError:
            if chain_ok:
                raise

    def _save_baseline(self, data: ReportData) -> None:
        from ekm.fsutil import atomic_write, ensure_private_dir
        from ekm.report.baseline import Baseline

        ensure_private_dir(self.layout.state_dir, home=self.home)
        doc = json.dumps(Baseline.from_report(data).to_dict(), separators=(",", ":"))
        atomic_write(self.report_baseline_path, doc.encode(), home=self.home)
