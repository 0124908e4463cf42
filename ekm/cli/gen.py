"""Generate the operator files that ship with ekm from the CLI's own definitions.

``completions/`` (bash, zsh, fish) and ``man/`` (``ekm.1``, one ``ekm-COMMAND.1`` per command,
``ekm.toml.5``) are committed so packagers and reviewers can read them, but they are never
edited by hand: options, arguments and help text come from the click command objects typer
builds, and the config page from ``ekm.config.SCHEMA``. A hand-written page drifts the day a
flag is added; a generated one cannot, and ``--check`` (run by the test suite) fails as soon as
the committed copy differs from what the CLI says now.

Usage::

    python -m ekm.cli.gen            # rewrite completions/ and man/ in the source tree
    python -m ekm.cli.gen --check    # exit 1 and name the stale files; write nothing
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Fixed, so regenerating is reproducible; bump it when the pages change meaningfully.
MAN_DATE = "2025-06-01"
PROG = "ekm"
COMPLETE_VAR = "_EKM_COMPLETE"

#: completions/ file -> typer shell name. bash-completion loads ``ekm.bash`` for ``ekm``;
#: zsh wants ``_ekm`` on $fpath; fish reads ``vendor_completions.d/ekm.fish``.
COMPLETION_FILES = {"ekm.bash": "bash", "_ekm": "zsh", "ekm.fish": "fish"}

# The CLI.md exit-code table (every command).
EXIT_STATUS = [
    ("0", "Success; nothing due; no findings at or above the threshold."),
    (
        "1",
        "The command worked and found something: keys due (rotate --check), findings (audit), "
        "incomplete deployment (deploy --status), alerts (monitor --once).",
    ),
    ("2", "Usage error: unknown command or flag, bad value."),
    (
        "3",
        "Not found or invalid: unknown key or version, missing or broken config, "
        "malformed input file.",
    ),
    (
        "4",
        "Refused for safety: integrity check failed (tampering, wrong passphrase, bad "
        "ciphertext), unsafe permissions, audit log unwritable, keystore locked by another "
        "process.",
    ),
    ("5", "A backend is unreachable or refuses: HSM library or token, Vault, webhook."),
    ("70", "Internal error (a bug): rerun with --debug and report it."),
]

ENVIRONMENT = {
    "EKM_HOME": "The deployment home, as --home. Default ~/.local/share/ekm, /var/lib/ekm for "
    "root.",
    "EKM_CONFIG": "The config file, as --config. Default $EKM_HOME/ekm.toml.",
    "EKM_PASSPHRASE": "The passphrase when the master key is passphrase-derived; without it ekm "
    "asks on a terminal and fails (exit 3) without one. Never put it on the command line.",
    "EKM_BACKUP_PASSPHRASE": "The passphrase that seals and opens backup bundles "
    "(backup create, verify, restore) when no recipient key is used.",
    "EKM_HSM_PIN": "The usual variable named by pin_env in [hsm] for the PKCS#11 user PIN.",
    "EKM_WEBHOOK_SECRET": "HMAC secret that signs webhook alert bodies (monitor --webhook); "
    "the variable name is set by webhook_secret_env in [monitor].",
    "VAULT_ADDR": "Vault address when [vault] endpoint is not set.",
    "VAULT_TOKEN": "Vault token when [vault] uses token auth without token_file.",
    "VAULT_NAMESPACE": "Vault Enterprise namespace when [vault] namespace is not set.",
    "VAULT_CACERT": "CA bundle that verifies Vault's TLS certificate.",
    "NO_COLOR": "When set (to anything), output carries no colour or escape codes. Output that "
    "is not a terminal never does.",
    "NOTIFY_SOCKET": "Set by systemd for monitor --daemon (Type=notify): readiness and watchdog "
    "pings go there.",
}

FILES = [
    ("$EKM_HOME/", "The home: 0700, owned by the user that runs ekm."),
    ("$EKM_HOME/ekm.toml", "The configuration (see ekm.toml(5))."),
    ("$EKM_HOME/master.json", "How the master key is protected (no secret in it)."),
    ("$EKM_HOME/master.key", 'The master key when [master_key] source = "file" (0600).'),
    ("$EKM_HOME/keys/NAME.json", "One key: metadata, MAC, wrapped material of every version."),
    ("$EKM_HOME/audit.log", "Hash-chained, MAC-keyed audit log (one JSON line per operation)."),
    ("$EKM_HOME/backups/", "Backup bundles written by ekm backup create and before rotations."),
    ("$EKM_HOME/state/", "Monitor and report state (baselines, last alerts)."),
    ("$EKM_HOME/.lock", "Keystore lock; a second writer waits [storage] lock_timeout."),
]

#: Hand-written examples per command (cron and CI lines first), on top of the docstring's.
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "ekm": [
        ("First deployment on the embedded file backend", "ekm deploy"),
        (
            "Nightly cron: exit 1 lists due keys, then rotate them",
            "ekm rotate --check || ekm rotate",
        ),
        (
            "CI gate with SARIF for code scanning",
            "ekm audit --compliance pci-dss --format sarif --output ekm.sarif",
        ),
    ],
    "deploy": [
        (
            "Preview, then deploy with a passphrase-derived master key (asked on the terminal)",
            "ekm deploy --dry-run\nekm deploy --master-key passphrase",
        ),
        ("Write hardened systemd units", "ekm deploy --systemd /etc/systemd/system"),
        ("Health check in a provisioning script (exit 1 if incomplete)", "ekm deploy --status"),
    ],
    "rotate": [
        (
            "crontab: at 03:15, rotate whatever is due (exit 1 from --check means due)",
            "15 3 * * * ekm rotate --check >/dev/null; [ $? -eq 1 ] && ekm rotate",
        ),
        ("What would happen in 30 days", "ekm rotate --dry-run --as-of +30d"),
        (
            "Zero-downtime rotation of a signing key",
            "ekm rotate jwt_signing --prepare\nekm rotate jwt_signing --activate\n"
            "ekm rotate jwt_signing --complete",
        ),
    ],
    "audit": [
        (
            "GitHub Actions / any CI: SARIF report, fail on high findings",
            "ekm audit --compliance pci-dss,nist-800-57 --format sarif --output ekm.sarif",
        ),
        (
            "GitLab CI: JUnit report for artifacts:reports:junit",
            "ekm audit --format junit --output ekm-junit.xml --soft-fail",
        ),
        ("Verify the audit log chain (cron)", "ekm audit --verify-log"),
    ],
    "monitor": [
        (
            "crontab: one pass every 10 minutes, alerts to Slack",
            "*/10 * * * * ekm monitor --once --slack https://hooks.slack.com/services/T0/B0/X",
        ),
        (
            "Foreground daemon under systemd with Prometheus metrics",
            "ekm monitor --daemon --interval 60 --metrics-port 9464",
        ),
    ],
    "status": [("Keys that are due, for a dashboard", "ekm status --json")],
    "report": [
        (
            "Monthly PDF for auditors (cron)",
            "0 6 1 * * ekm report --format pdf --output /srv/reports/ekm.pdf",
        ),
    ],
    "keys": [
        ("Public JWK of the RSA key", "ekm keys export rsa --public --format jwk"),
        ("Crypto-shred an old version", "ekm keys destroy jwt_signing --version 1"),
    ],
    "backup": [
        (
            "Nightly backup (cron) sealed to an offline public key, so no secret sits in crontab",
            '0 2 * * * ekm backup create --recipient "$(cat /etc/ekm/offline.recipient)"',
        ),
        (
            "On the offline host that holds the recipient key, check a bundle",
            "ekm backup verify --identity offline_backup ekm-20250601T020000Z.ekmbak",
        ),
    ],
}

#: Environment variables worth naming on a command's page beyond the common ones.
_COMMON_ENV = ("EKM_HOME", "EKM_CONFIG", "EKM_PASSPHRASE", "NO_COLOR")
_EXTRA_ENV = {
    "backup": ("EKM_BACKUP_PASSPHRASE",),
    "monitor": ("EKM_WEBHOOK_SECRET", "NOTIFY_SOCKET", "VAULT_ADDR", "VAULT_TOKEN", "EKM_HSM_PIN"),
    "status": ("EKM_HSM_PIN", "VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT"),
    "deploy": ("EKM_HSM_PIN", "VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT"),
    "keys": ("VAULT_ADDR", "VAULT_TOKEN"),
    "generate": ("EKM_HSM_PIN", "VAULT_ADDR", "VAULT_TOKEN"),
}


# ------------------------------------------------------------------------------------------
# The CLI as click objects
# ------------------------------------------------------------------------------------------
def cli_command() -> Any:
    """The root click group typer builds for ``ekm``, every command module registered."""
    import typer

    from ekm.cli.main import build_app

    return typer.main.get_command(build_app())


def _ctx(cmd: Any, name: str, parent: Any = None) -> Any:
    return cmd.make_context(name, [], parent=parent, resilient_parsing=True)


def _help_records(cmd: Any, ctx: Any) -> list[tuple[str, str]]:
    out = []
    for p in cmd.params:
        if getattr(p, "hidden", False) or p.name in ("install_completion", "show_completion"):
            continue
        rec = p.get_help_record(ctx)
        if rec:
            out.append(rec)
    out.append(("-h, --help", "Show the help and exit."))
    return out


_EXAMPLE_RE = re.compile(r"^\s*Examples?:\s*(.+)$", re.S)


def split_doc(text: str | None) -> tuple[list[str], list[str]]:
    """A docstring as (description paragraphs, example command lines)."""
    paras, examples = [], []
    for para in (text or "").strip().split("\n\n"):
        para = " ".join(para.split())
        m = _EXAMPLE_RE.match(para)
        if m:
            for ex in m.group(1).split(" | "):
                ex = re.sub(r"\s*\((?:cron|CI)\)\s*$", "", ex.strip())
                if ex:
                    examples.append(ex)
        elif para:
            paras.append(para)
    return paras, examples


# ------------------------------------------------------------------------------------------
# Completions
# ------------------------------------------------------------------------------------------
def completion_script(shell: str) -> str:
    """The script for ``shell``, exactly what ``_EKM_COMPLETE=source_SHELL ekm`` prints."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def completion_scripts() -> dict[str, str]:
    """completions/ file name -> script (``ekm completion SHELL`` prints the same)."""
    return {fname: completion_script(shell) for fname, shell in COMPLETION_FILES.items()}


# ------------------------------------------------------------------------------------------
# roff
# ------------------------------------------------------------------------------------------
def esc(text: str) -> str:
    """Text safe in a roff line: backslashes, and no line starting with a control character."""
    text = str(text).replace("\\", "\\e")
    text = text.replace("\n", " ")
    if text[:1] in (".", "'"):
        text = "\\&" + text
    return text


def opt(text: str) -> str:
    """An option spelling with real minus signs (``\\-``) so it can be copied from the page."""
    return esc(text).replace("-", "\\-")


def _tp(tag: str, body: str, *, bold: bool = True) -> list[str]:
    return [".TP", (".B " if bold else "") + tag, esc(body)]


class Page:
    """One man(7) page being written: a list of lines."""

    def __init__(self, name: str, section: int, title: str) -> None:
        self.lines = [
            f'.TH {name.upper()} {section} {MAN_DATE} "ekm {_version()}" "ekm manual"',
            ".SH NAME",
            f"{opt(name)} \\- {esc(title)}",
        ]

    def sh(self, title: str) -> None:
        self.lines.append(f".SH {title}")

    def ss(self, title: str) -> None:
        self.lines.append('.SS "' + esc(title).replace('"', "\\(dq") + '"')

    def para(self, text: str) -> None:
        if self.lines[-1].startswith((".SH", ".SS")):
            self.lines.append(esc(text))
        else:
            self.lines += [".PP", esc(text)]

    def tp(self, tag: str, body: str) -> None:
        self.lines += _tp(tag, body)

    def example(self, caption: str | None, *commands: str) -> None:
        """An optional caption paragraph, then the command lines verbatim."""
        if caption:
            self.para(caption + ":")
        elif not self.lines[-1].startswith(".SH"):
            self.lines.append(".PP")
        self.lines += [".EX", *(esc(c) for c in commands), ".EE"]

    def text(self) -> str:
        """The page, text lines filled to 78 columns (outside .EX blocks, which are verbatim)."""
        out: list[str] = []
        verbatim = False
        for line in "\n".join(self.lines).split("\n"):
            if line in (".EX", ".EE"):
                verbatim = line == ".EX"
            if not line or verbatim or line.startswith(".") or len(line) <= 78:
                out += [line] if line else []
                continue
            for part in textwrap.wrap(line, 78, break_long_words=False, break_on_hyphens=False):
                out.append("\\&" + part if part[:1] in (".", "'") else part)
        return "\n".join(out) + "\n"


def _toml(value: Any) -> str:
    """A value as it is written in ekm.toml (an empty table has no one-line tomli-w form)."""
    from ekm import config as cfg

    return "{}" if value == {} else cfg._toml_value(value)


def _version() -> str:
    from ekm import __version__

    return __version__


def _options(page: Page, records: Iterable[tuple[str, str]]) -> None:
    for tag, body in records:
        flags, _, metavar = tag.partition(" ")
        rendered = opt(flags) if flags.startswith("-") else esc(flags)
        if metavar:
            rendered = f'{rendered} " " "{esc(metavar)}"'
            page.lines += [".TP", f".BI {rendered}", esc(body)]
        else:
            page.lines += [".TP", f".B {rendered}", esc(body)]


def _common_tail(page: Page, command: str, examples: list[str]) -> None:
    page.sh("EXIT STATUS")
    for code, text in EXIT_STATUS:
        page.tp(code, text)
    page.sh("ENVIRONMENT")
    names = ENVIRONMENT if command == "ekm" else (*_COMMON_ENV, *_EXTRA_ENV.get(command, ()))
    for name in names:
        page.tp(name, ENVIRONMENT[name])
    page.sh("FILES")
    for path, text in FILES:
        page.tp(path, text)
    hand = EXAMPLES.get(command, [])
    if hand or examples:
        page.sh("EXAMPLES")
        for ex in examples:
            page.example(None, ex)
        for caption, ex in hand:
            page.example(caption, *ex.split("\n"))
    page.sh("SEE ALSO")
    refs = ["ekm(1)"] if command != "ekm" else []
    refs += ["ekm.toml(5)", "crontab(5)", "systemd.service(5)"]
    page.lines.append(",\n".join(".BR " + r.replace("(", " (") for r in refs))
    page.para(
        "The documents in docs/ of the source tree: FORMAT.md, compliance.md, hsm.md, "
        "vault.md, monitoring.md; and SECURITY.md."
    )


def main_page(root: Any) -> str:
    """ekm(1): the global options, every command by group, exit codes, environment, files."""
    ctx = _ctx(root, PROG)
    page = Page("ekm", 1, "generate, store, rotate, audit and monitor cryptographic keys")
    page.sh("SYNOPSIS")
    page.lines += [
        ".B ekm",
        "[\\fB\\-\\-home\\fR \\fIDIR\\fR] [\\fB\\-\\-config\\fR \\fIFILE\\fR] "
        "[\\fB\\-\\-json\\fR] [\\fB\\-\\-debug\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]",
    ]
    page.sh("DESCRIPTION")
    page.para(
        "ekm generates, stores, rotates, audits and monitors the keys a platform runs on: data "
        "encryption keys, JWT signing keys, API keys, session and HMAC keys, RSA, elliptic-curve "
        "and post-quantum key pairs. Keys live in a home directory (the file keystore, wrapped "
        "under a master key) or in Vault; material can also stay inside an HSM over PKCS#11."
    )
    page.para(
        "Every operation that touches a key is written to a hash-chained audit log first; if "
        "the log cannot be written the operation is refused. Output is a table on a terminal, "
        "plain text when piped, and one JSON document on stdout with --json; messages and "
        "progress go to stderr. Global options may also follow the command."
    )
    page.sh("OPTIONS")
    _options(page, _help_records(root, ctx))
    page.sh("COMMANDS")
    groups: dict[str, list[tuple[str, Any]]] = {}
    for name, cmd in root.commands.items():
        groups.setdefault(getattr(cmd, "rich_help_panel", None) or "Commands", []).append(
            (name, cmd)
        )
    for group, cmds in groups.items():
        page.ss(group)
        for name, cmd in cmds:
            page.lines += [".TP", f".BR ekm-{opt(name)} (1)", esc(cmd.get_short_help_str(200))]
    _common_tail(page, "ekm", [])
    return page.text()


def command_page(root: Any, name: str) -> str:
    """ekm-NAME(1): one command, or a command group with every subcommand."""
    rctx = _ctx(root, PROG)
    cmd = root.commands[name]
    ctx = _ctx(cmd, name, rctx)
    paras, examples = split_doc(cmd.help)
    page = Page(f"ekm-{name}", 1, cmd.get_short_help_str(200).rstrip("."))
    page.sh("SYNOPSIS")
    subs = dict(getattr(cmd, "commands", {}) or {})
    # a group that also runs on its own (``ekm audit [OPTIONS]``, ``ekm audit attest``)
    standalone = bool(subs) and getattr(cmd, "invoke_without_command", False)
    if standalone:
        page.lines += [f".B ekm {opt(name)}", "[OPTIONS]"]
    if subs:
        for sub_name, sub in subs.items():
            sctx = _ctx(sub, sub_name, ctx)
            page.lines += [
                ".br" if page.lines[-1] != ".SH SYNOPSIS" else "",
                f".B ekm {opt(name)} {opt(sub_name)}",
                esc(" ".join(sub.collect_usage_pieces(sctx))),
            ]
    else:
        page.lines += [f".B ekm {opt(name)}", esc(" ".join(cmd.collect_usage_pieces(ctx)))]
    page.sh("DESCRIPTION")
    for p in paras or [cmd.get_short_help_str(200)]:
        page.para(p)
    page.para("The global options of ekm(1) (--home, --config, --json, --debug) apply too.")
    if standalone:
        page.sh("OPTIONS")
        _options(page, _help_records(cmd, ctx))
    if subs:
        page.sh("COMMANDS")
        for sub_name, sub in subs.items():
            sctx = _ctx(sub, sub_name, ctx)
            page.ss(f"ekm {name} {sub_name} " + " ".join(sub.collect_usage_pieces(sctx)))
            sparas, sexamples = split_doc(sub.help)
            for p in sparas:
                page.para(p)
            _options(page, _help_records(sub, sctx))
            examples += sexamples
    else:
        page.sh("OPTIONS")
        _options(page, _help_records(cmd, ctx))
    _common_tail(page, name, examples)
    return page.text()


def config_page() -> str:
    """ekm.toml(5) from ekm.config.SCHEMA: every section and option with its default."""
    from ekm import config as cfg

    page = Page("ekm.toml", 5, "configuration file of ekm(1)")
    page.sh("SYNOPSIS")
    page.para("$EKM_HOME/ekm.toml, or the file named by --config or EKM_CONFIG.")
    page.sh("DESCRIPTION")
    page.para(
        "A TOML file. ekm deploy writes a minimal one; config.example.toml in the source tree "
        "lists every option. Unknown sections and keys, and values of the wrong type or out of "
        "range, are errors (exit 3) that name the file, the key and the expected form: a typo "
        "never silently falls back to a default."
    )
    page.para("Durations are written like 30s, 5m, 12h, 90d. Paths are relative to the home.")
    page.sh("OPTIONS")
    for section, options in cfg.SCHEMA.items():
        page.ss(f"[{section}]")
        for name, o in options.items():
            default = "unset" if o.default is None else _toml(o.default)
            body = f"{o.doc}. Default: {default}."
            if o.default is None and o.example is not None:
                body += f" Example: {_toml(o.example)}."
            page.tp(name, body)
    page.ss("[keys.NAME]")
    page.para(
        "The key set that ekm generate (without NAME) and ekm deploy create; without any "
        "[keys.*] table the default key set is used. NAME: lower-case letters, digits, _ - and ."
    )
    for name, o in cfg.KEY_OPTIONS.items():
        if name in ("type", "usage"):
            default = "none, required"
        else:
            default = "from [policy]" if o.default is None else _toml(o.default)
        page.tp(name, f"{o.doc}. Default: {default}.")
    page.ss('[policy."TYPE"]')
    page.para(
        "Rotation policy for every key of one type; a key's own settings win. Options: "
        + ", ".join(cfg.POLICY_OPTIONS)
        + ". When neither says, "
        + ", ".join(f"{k} = {_toml(v)}" for k, v in cfg.FALLBACK_POLICY.items() if v)
        + "."
    )
    page.ss("[hsm]")
    page.para(
        "PKCS#11 token: library_path, token_label or slot_id, pin_env or pin_file (never the PIN "
        "itself), key_label_prefix, fips_validation (the module's certificate as declared by "
        "the operator: fips-140-3, fips-140-2 or none; audits take it as declared). See "
        "docs/hsm.md."
    )
    page.ss("[vault]")
    page.para(
        "HashiCorp Vault: endpoint, auth_method, mount_path, transit_mount, transit_key; the "
        "token comes from VAULT_TOKEN or token_file. See docs/vault.md."
    )
    page.sh("EXAMPLES")
    page.example(
        "A key of one's own beside the default set",
        "[keys.billing]",
        'type = "aes-256-gcm"',
        'usage = "encryption"',
        'rotate_every = "90d"',
        'labels = { team = "payments" }',
    )
    page.sh("SEE ALSO")
    page.lines.append(".BR ekm (1),\n.BR ekm-deploy (1)")
    return page.text()


def man_pages() -> dict[str, str]:
    """man/ file name -> page."""
    root = cli_command()
    pages = {"ekm.1": main_page(root)}
    for name in root.commands:
        pages[f"ekm-{name}.1"] = command_page(root, name)
    pages["ekm.toml.5"] = config_page()
    return pages


# ------------------------------------------------------------------------------------------
# Writing and checking
# ------------------------------------------------------------------------------------------
def generated(root: Path) -> dict[Path, str]:
    """Every generated file under the source tree ``root`` and its content now."""
    out = {root / "completions" / f: t for f, t in completion_scripts().items()}
    out.update({root / "man" / f: t for f, t in man_pages().items()})
    return out


def stale(root: Path) -> list[str]:
    """Files that differ from what the CLI generates now, missing ones, and leftovers."""
    want = generated(root)
    bad = [
        str(p.relative_to(root))
        for p, text in want.items()
        if not p.is_file() or p.read_text(encoding="utf-8") != text
    ]
    for sub in ("completions", "man"):
        d = root / sub
        for p in sorted(d.iterdir()) if d.is_dir() else ():
            if p not in want and not p.name.startswith("."):
                bad.append(f"{p.relative_to(root)} (not generated any more)")
    return bad


def write(root: Path) -> list[str]:
    """Write every generated file (atomically, world-readable: these are public docs)."""
    from ekm.fsutil import atomic_write

    changed = []
    for path, text in generated(root).items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode(), mode=0o644)
        changed.append(str(path.relative_to(root)))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ekm.cli.gen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[2],
        help="source tree (default: the one this module is in)",
    )
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.root)
        for b in bad:
            sys.stderr.write(f"stale: {b}\n")
        if bad:
            sys.stderr.write("regenerate with: python -m ekm.cli.gen\n")
        return 1 if bad else 0
    for c in write(args.root):
        sys.stderr.write(f"wrote {c}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
