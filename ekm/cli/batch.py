"""Many files in one ``ekm encrypt/decrypt/rewrap/sign/verify`` call.

Scripts used to run ekm once per file and paid its start-up each time; one call now takes any
number of files. The rules, the same for the five commands:

* ``-`` (stdin) may appear once; its output goes to stdout;
* each other output goes beside its input (``IN.ekm``, ``IN`` without ``.ekm``, ``IN.sig``) or
  into ``--out-dir DIR`` under the input's name; two inputs that would write the same output
  are refused before anything is done;
* every file is processed, each with its own audit record (the KeyManager call writes it) and
  its own report line; a failure is one ``ekm: error: FILE: ...`` line on stderr and does not
  stop the others unless ``--fail-fast`` (the rest are then reported as skipped);
* the exit code is 0 when all succeeded, otherwise the exit code of the first failure;
* with ``--json``: ``{"files": [{"input", "output", "ok", ...}], "ok": N, "failed": N,
  "skipped": N}``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ekm.errors import EkmError, UsageError

STDIN = "-"


@dataclass
class Outcome:
    """What happened to one input."""

    input: str
    output: str | None
    ok: bool = False
    skipped: bool = False
    code: int = 0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"input": self.input, "output": self.output, "ok": self.ok}
        doc.update(self.detail)
        if self.skipped:
            doc["skipped"] = True
        if self.error is not None:
            doc["error"] = self.error
            doc["exit_code"] = self.code
        return doc


def check_inputs(inputs: Sequence[str]) -> list[str]:
    """The inputs, with ``-`` allowed at most once."""
    items = list(inputs)
    if items.count(STDIN) > 1:
        raise UsageError("- (stdin) can be given only once")
    return items


Target = str | None | EkmError


def output_paths(
    inputs: Sequence[str], out_dir: str | None, name_for: Callable[[str], str]
) -> list[Target]:
    """Each input's output path (None for stdin: its output is stdout).

    ``name_for(input)`` gives the output path beside the input; when it cannot (e.g. a decrypt
    input without ``.ekm``) it raises UsageError, which becomes that input's own failure.
    """
    if out_dir is not None and not Path(out_dir).is_dir():
        raise UsageError(f"--out-dir {out_dir}: not a directory; create it first")
    outputs: list[Target] = []
    seen: dict[str, str] = {}
    for item in inputs:
        if item == STDIN:
            outputs.append(None)
            continue
        try:
            beside = name_for(item)
        except UsageError as exc:
            outputs.append(exc)  # this input fails on its own when its turn comes
            continue
        target = str(Path(out_dir) / Path(beside).name) if out_dir is not None else beside
        key = os.path.normpath(os.path.abspath(target))
        if key in seen:
            raise UsageError(f"{seen[key]} and {item} would both write {target}; nothing was done")
        seen[key] = item
        outputs.append(target)
    return outputs


def run(
    inputs: Sequence[str],
    outputs: Sequence[Target],
    one: Callable[[str, str | None], dict[str, Any]],
    *,
    fail_fast: bool,
    on_ok: Callable[[Outcome], None] | None = None,
    group: Any = None,
    group_size: int = 256,
) -> list[Outcome]:
    """Call ``one(input, output)`` for each input; collect outcomes, never stop early unless
    ``fail_fast``. ``one`` returns the detail fields of the report (bytes, key...);
    ``on_ok(outcome)`` prints the success line of a text report once a file is done.

    With ``group`` (an active ekm.ops.file_batch.FileBatch) the audit records and outputs of
    up to ``group_size`` files are committed together; a file counts as done only after that
    commit, and stdin is processed on its own, outside any group.
    """
    outcomes: list[Outcome] = []
    pending: list[Outcome] = []
    stop = False
    any_failed = False

    def failed(outcome: Outcome, exc: EkmError) -> None:
        nonlocal any_failed
        any_failed = True
        outcome.ok = False
        outcome.code, outcome.error = exc.exit_code, exc.message
        sys.stderr.write(f"ekm: error: {outcome.input}: {exc.message}\n")
        sys.stderr.flush()

    def done(outcome: Outcome) -> None:
        outcome.ok = True
        if on_ok is not None:
            on_ok(outcome)

    def settle() -> bool:
        """Commit the pending group; False when its records could not be written."""
        if not pending:
            return True
        from ekm.ops.file_batch import same_path

        try:
            errors = group.flush()
        except EkmError as exc:
            for outcome in pending:
                failed(outcome, exc)
            pending.clear()
            return False
        for outcome in pending:
            err = errors.get(same_path(outcome.output)) if outcome.output else None
            if err is not None:
                failed(outcome, err)
            else:
                done(outcome)
        pending.clear()
        return True

    for item, target in zip(inputs, outputs, strict=True):
        shown = None if isinstance(target, EkmError) else (target or STDIN)
        outcome = Outcome(item, shown)
        outcomes.append(outcome)
        if stop:
            outcome.skipped = True
            continue
        try:
            if isinstance(target, EkmError):
                raise target
            if group is not None and item == STDIN:
                if not settle() or (fail_fast and any_failed):
                    outcome.skipped = stop = True
                    continue
                with group.paused():
                    outcome.detail = one(item, target)
                done(outcome)
            elif group is not None:
                outcome.detail = one(item, target)
                pending.append(outcome)
                if len(pending) >= group_size:
                    stop = not settle()
            else:
                outcome.detail = one(item, target)
                done(outcome)
        except EkmError as exc:
            failed(outcome, exc)
        if fail_fast and any_failed:
            stop = True
    if group is not None:
        settle()
    return outcomes


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """0 when every file succeeded, else the exit code of the first failure."""
    for outcome in outcomes:
        if not outcome.ok and not outcome.skipped:
            return outcome.code
    return 0


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The ``--json`` document of a multi-file call."""
    return {
        "files": [o.to_dict() for o in outcomes],
        "ok": sum(o.ok for o in outcomes),
        "failed": sum(not o.ok and not o.skipped for o in outcomes),
        "skipped": sum(o.skipped for o in outcomes),
    }


def tally(verb: str, outcomes: Sequence[Outcome]) -> str:
    """``encrypted 998 of 1000 files; 2 failed`` (the last line of a text report)."""
    doc = summary(outcomes)
    text = f"{verb} {doc['ok']} of {len(outcomes)} files"
    if doc["failed"]:
        text += f"; {doc['failed']} failed"
    if doc["skipped"]:
        text += f"; {doc['skipped']} skipped after the first failure (--fail-fast)"
    return text
