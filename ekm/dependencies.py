"""Which PyPI package provides each third-party module ekm imports, for the one-line error a
user sees when an environment lost one.

``pip install .`` installs all of them (pyproject.toml), and each is imported only by the
command that needs it, so a missing one shows up only when that command runs. Without this
table the user would get "internal error: ModuleNotFoundError" (exit 70) and a bug report;
with it they get the package name and the command that installs it (exit 5, "a backend is
unavailable"), as for an HSM library or a Vault server that cannot be reached.
"""

from __future__ import annotations

from ekm.errors import BackendError

# top-level module -> (distribution to install, what in ekm needs it)
PROVIDERS: dict[str, tuple[str, str]] = {
    "pkcs11": ("python-pkcs11", "the HSM (PKCS#11) backend"),
    "asn1crypto": ("asn1crypto", "the HSM (PKCS#11) backend"),
    "hvac": ("hvac", "the Vault backend"),
    "requests": ("requests", "the Vault backend"),
    "urllib3": ("urllib3", "the Vault backend"),
    "certifi": ("certifi", "the Vault backend"),
    "idna": ("idna", "the Vault backend"),
    "charset_normalizer": ("charset-normalizer", "the Vault backend and PDF reports"),
    "prometheus_client": ("prometheus-client", "ekm monitor's Prometheus metrics"),
    "inotify_simple": ("inotify-simple", "ekm monitor --daemon's file watcher"),
    "reportlab": ("reportlab", "ekm report --format pdf"),
    "_rl_accel": ("rl_accel", "ekm report --format pdf"),
    "PIL": ("pillow", "ekm report --format pdf"),
    "typer": ("typer", "the ekm command"),
    "click": ("click", "the ekm command"),
    "rich": ("rich", "the ekm command"),
    "cryptography": ("cryptography", "every key operation"),
    "cffi": ("cffi", "every key operation"),
    "argon2": ("argon2-cffi", "passphrase master keys"),
    "jwt": ("PyJWT", "JWT signing keys"),
    "tomli_w": ("tomli-w", "writing ekm.toml"),
    "tomli": ("tomli", "reading ekm.toml"),
}


class MissingDependencyError(BackendError):
    """A module ekm needs is not installed in this Python (exit 5, like an absent HSM library)."""


def missing_dependency(exc: ModuleNotFoundError) -> MissingDependencyError | None:
    """The one-line error for a third-party module that is not installed, or None.

    None for ekm's own modules: a missing ``ekm.*`` module is a broken ekm, not a missing
    dependency, and stays an internal error.
    """
    name = (exc.name or "").split(".", 1)[0]
    if not name or name == "ekm":
        return None
    package, needed_by = PROVIDERS.get(name, (name.replace("_", "-"), "ekm"))
    return MissingDependencyError(
        f"the Python package {package!r} is not installed (module {name!r}, needed by "
        f"{needed_by}); install it: pip install {package} (pipx: pipx inject ekm {package})"
    )
