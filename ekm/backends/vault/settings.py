"""The ``[vault]`` table of ekm.toml, validated: endpoints, auth, mounts, TLS, time bounds.

Why a module of its own: validation is pure (no hvac, no network), shared by the client, the
CLI's config checks and ``ekm audit``; every error names the key and the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ekm.errors import ConfigError
from ekm.timeutil import parse_duration

AUTH_METHODS = ("token", "approle", "kubernetes")
K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
_MOUNT_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@:+=-]+$")


_STR_KEYS = {
    "endpoint",
    "namespace",
    "auth_method",
    "role_id",
    "approle_mount",
    "role",
    "kubernetes_mount",
    "mount_path",
    "transit_mount",
    "transit_key",
}
_PATH_KEYS = {
    "token_file",
    "secret_id_file",
    "service_account_token_path",
    "ca_cert",
    "client_cert",
    "client_key",
}
_BOOL_KEYS = {"verify", "allow_plaintext_http"}
_OTHER_KEYS = {"timeout", "token_warn_before", "endpoints", "failover_timeout"}
#: The longest ekm keeps retrying and moving between nodes before it reports (seconds).
DEFAULT_FAILOVER_TIMEOUT = 30.0
MAX_ENDPOINTS = 16
KNOWN_KEYS = frozenset(_STR_KEYS | _PATH_KEYS | _BOOL_KEYS | _OTHER_KEYS)


@dataclass(frozen=True)
class VaultSettings:
    """The ``[vault]`` table of ekm.toml, validated. The token itself is never repr'd."""

    endpoint: str
    namespace: str | None = None
    auth_method: str = "token"
    token: str | None = field(default=None, repr=False, compare=False)
    token_file: Path | None = None
    role_id: str | None = field(default=None, repr=False)
    secret_id_file: Path | None = None
    approle_mount: str = "approle"
    role: str | None = None
    service_account_token_path: Path = Path(K8S_TOKEN_PATH)
    kubernetes_mount: str = "kubernetes"
    mount_path: str = "secret"
    transit_mount: str = "transit"
    transit_key: str = "ekm"
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    verify: bool = True
    timeout: float = 10.0
    token_warn_before: timedelta = timedelta(hours=24)
    allow_plaintext_http: bool = False
    #: Every node of the cluster in the order to try; ``endpoint`` is the first one.
    endpoints: tuple[str, ...] = ()
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT

    def __post_init__(self) -> None:
        if not self.endpoints:
            object.__setattr__(self, "endpoints", (self.endpoint,))

    @classmethod
    def from_mapping(
        cls,
        d: Mapping[str, Any],
        *,
        env: Mapping[str, str] = os.environ,
        source: str = "ekm.toml",
    ) -> VaultSettings:
        """Validate a ``[vault]`` table; every error names the key and ``source``.

        The explicit config wins over the environment (``VAULT_ADDR``, ``VAULT_NAMESPACE``,
        ``VAULT_CACERT``): a shell pointed at a dev Vault must not redirect a deployment that
        says where its Vault is. The token never belongs in the file: ``VAULT_TOKEN`` or
        ``token_file``.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: [vault] must be a table")
        for key in d:
            if key == "token":
                raise ConfigError(
                    f"{source}: vault.token is not allowed (a secret in a config file); "
                    "set VAULT_TOKEN or vault.token_file instead"
                )
            if key not in KNOWN_KEYS:
                raise ConfigError(
                    f"{source}: unknown key vault.{key}; "
                    f"known keys: {', '.join(sorted(KNOWN_KEYS))}"
                )
        kw: dict[str, Any] = {}
        for key in _STR_KEYS & d.keys():
            value = d[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{source}: vault.{key} must be a non-empty string")
            kw[key] = value.strip()
        for key in _PATH_KEYS & d.keys():
            value = d[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{source}: vault.{key} must be a file path (a string)")
            kw[key] = Path(value.strip()).expanduser()
        for key in _BOOL_KEYS & d.keys():
            if not isinstance(d[key], bool):
                raise ConfigError(f"{source}: vault.{key} must be true or false")
            kw[key] = d[key]
        if "timeout" in d:
            t = d["timeout"]
            if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 300:
                raise ConfigError(
                    f"{source}: vault.timeout must be a number of seconds in (0, 300]"
                )
            kw["timeout"] = float(t)
        if "token_warn_before" in d:
            try:
                kw["token_warn_before"] = parse_duration(d["token_warn_before"])
            except ValueError as exc:
                raise ConfigError(f"{source}: vault.token_warn_before: {exc}") from None

        if "failover_timeout" in d:
            t = d["failover_timeout"]
            if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 3600:
                raise ConfigError(
                    f"{source}: vault.failover_timeout must be a number of seconds in (0, 3600]"
                )
            kw["failover_timeout"] = float(t)
        plain = kw.get("allow_plaintext_http", False)
        if "endpoints" in d:
            if "endpoint" in kw:
                raise ConfigError(
                    f"{source}: set vault.endpoint (one node) or vault.endpoints (a cluster), "
                    "not both"
                )
            listed = d["endpoints"]
            if (
                not isinstance(listed, list)
                or not 0 < len(listed) <= MAX_ENDPOINTS
                or not all(isinstance(u, str) and u.strip() for u in listed)
            ):
                raise ConfigError(
                    f"{source}: vault.endpoints must be a list of 1 to {MAX_ENDPOINTS} "
                    'URLs, e.g. ["https://vault-1:8200", "https://vault-2:8200"]'
                )
            checked = [_check_endpoint(u.strip(), plain, source, "endpoints") for u in listed]
            if len(set(checked)) != len(checked):
                raise ConfigError(f"{source}: vault.endpoints names a node twice")
            kw["endpoints"] = tuple(checked)
            kw["endpoint"] = checked[0]
        else:
            endpoint = kw.get("endpoint") or env.get("VAULT_ADDR", "").strip()
            if not endpoint:
                raise ConfigError(f"{source}: vault.endpoint is not set (nor VAULT_ADDR)")
            kw["endpoint"] = _check_endpoint(endpoint, plain, source)
        if "namespace" not in kw and env.get("VAULT_NAMESPACE", "").strip():
            kw["namespace"] = env["VAULT_NAMESPACE"].strip()
        if "namespace" in kw:
            kw["namespace"] = _check_mount(kw["namespace"], "namespace", source)
        if "ca_cert" not in kw and env.get("VAULT_CACERT", "").strip():
            kw["ca_cert"] = Path(env["VAULT_CACERT"].strip())
        for key in ("mount_path", "transit_mount", "approle_mount", "kubernetes_mount"):
            if key in kw:
                kw[key] = _check_mount(kw[key], key, source)
        if "transit_key" in kw and not _SEGMENT_RE.match(kw["transit_key"]):
            raise ConfigError(
                f"{source}: vault.transit_key must be one path segment ([A-Za-z0-9_.-])"
            )

        method = kw.get("auth_method", "token")
        if method not in AUTH_METHODS:
            raise ConfigError(
                f"{source}: vault.auth_method must be one of {', '.join(AUTH_METHODS)}, "
                f"not {method!r}"
            )
        if method == "token" and "token_file" not in kw:
            token = env.get("VAULT_TOKEN", "").strip()
            if not token:
                raise ConfigError(
                    f"{source}: vault.auth_method is token but neither VAULT_TOKEN nor "
                    "vault.token_file is set"
                )
            kw["token"] = token
        if method == "approle":
            for key in ("role_id", "secret_id_file"):
                if key not in kw:
                    raise ConfigError(f"{source}: vault.auth_method is approle; set vault.{key}")
        if method == "kubernetes" and "role" not in kw:
            raise ConfigError(f"{source}: vault.auth_method is kubernetes; set vault.role")
        if "client_key" in kw and "client_cert" not in kw:
            raise ConfigError(f"{source}: vault.client_key is set without vault.client_cert")
        for key in ("ca_cert", "client_cert", "client_key"):
            if key in kw and not kw[key].is_file():
                raise ConfigError(
                    f"{source}: vault.{key}: {kw[key]} does not exist or is not a file"
                )
        return cls(**kw)

    @property
    def verify_arg(self) -> bool | str:
        """What requests wants for ``verify``: False, a CA bundle path, or True."""
        if not self.verify:
            return False
        return str(self.ca_cert) if self.ca_cert else True

    @property
    def cert_arg(self) -> str | tuple[str, str] | None:
        if self.client_cert is None:
            return None
        if self.client_key is None:
            return str(self.client_cert)
        return (str(self.client_cert), str(self.client_key))


def _check_endpoint(url: str, allow_plaintext: bool, source: str, key: str = "endpoint") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # A URL with "@" may carry user:password (even unparsed, "user:pw@host"): not echoed.
        shown = "(a URL with '@', not shown)" if "@" in url else repr(url)
        raise ConfigError(f"{source}: vault.{key} {shown} must be an http(s):// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            f"{source}: vault.{key} must be scheme://host[:port] without credentials, "
            "query or fragment"
        )
    if parts.path not in ("", "/"):
        raise ConfigError(f"{source}: vault.{key} must not have a path (got {parts.path!r})")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"{source}: vault.{key} has an invalid port") from None
    if parts.scheme == "http" and not allow_plaintext and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{source}: vault.{key} {url!r} is plain http to a remote host, which would send "
            "the token in clear; use https (or set vault.allow_plaintext_http = true)"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_mount(value: str, key: str, source: str) -> str:
    value = value.strip("/")
    if not _MOUNT_RE.match(value) or ".." in value.split("/"):
        raise ConfigError(f"{source}: vault.{key} {value!r} is not a valid Vault path")
    return value
