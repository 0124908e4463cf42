"""HashiCorp Vault client: KV v2 storage with check-and-set, Transit wrap/unwrap, status.

Why this shape:
- hvac (and through it requests) is imported only when a Vault backend is used, inside
  :meth:`VaultClient._client`, so ``import ekm`` and ``ekm rotate --check`` stay fast.
- hvac's ``RawAdapter`` gives us the TLS session, the ``X-Vault-Token`` and
  ``X-Vault-Namespace`` headers; every status code is interpreted here, in one place, so each
  fault (unreachable, sealed, expired token, policy denial, KV v1 mount, CAS conflict, TLS
  failure) becomes one one-line :class:`~ekm.errors.EkmError` naming the endpoint and the fix.
- Transient faults (connection refused, timeouts, 429, 5xx, sealed/standby 503) are retried with
  bounded exponential backoff and jitter; ``sleep`` is injectable so tests do not wait. Auth
  failures and policy denials are never retried: retrying cannot fix them and only hides them.
- Every KV write carries ``options.cas``: two hosts rotating at once cannot overwrite each
  other's version; the loser gets :class:`CasConflict`, re-reads and decides again.
- No message, log or exception ever contains the token, secret ID, JWT or any plaintext.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import random
import re
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from ekm.errors import (
    BackendAuthError,
    BackendError,
    ConfigError,
    IntegrityError,
    InvalidError,
)
from ekm.timeutil import parse_duration

AUTH_METHODS = ("token", "approle", "kubernetes")
K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
CAS_MISMATCH = "check-and-set parameter did not match the current version"
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_CREDENTIAL_BYTES = 64 * 1024
#: The largest Vault answer ekm parses (a key document with many versions is a few KiB).
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_MOUNT_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@:+=-]+$")
_CIPHERTEXT_RE = re.compile(r"^vault:v[1-9][0-9]{0,8}:[A-Za-z0-9+/]+={0,2}$")


class CasConflict(BackendError):
    """Another writer changed a KV secret since we read it: re-read it and decide again."""

    def __init__(self, message: str, *, path: str, expected: int, current: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.current = current


# --------------------------------------------------------------------------------------------
# settings


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
_OTHER_KEYS = {"timeout", "token_warn_before"}
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

        endpoint = kw.get("endpoint") or env.get("VAULT_ADDR", "").strip()
        if not endpoint:
            raise ConfigError(f"{source}: vault.endpoint is not set (nor VAULT_ADDR)")
        kw["endpoint"] = _check_endpoint(endpoint, kw.get("allow_plaintext_http", False), source)
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


def _check_endpoint(url: str, allow_plaintext: bool, source: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # A URL with "@" may carry user:password (even unparsed, "user:pw@host"): not echoed.
        shown = "(a URL with '@', not shown)" if "@" in url else repr(url)
        raise ConfigError(f"{source}: vault.endpoint {shown} must be an http(s):// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            f"{source}: vault.endpoint must be scheme://host[:port] without credentials, "
            "query or fragment"
        )
    if parts.path not in ("", "/"):
        raise ConfigError(f"{source}: vault.endpoint must not have a path (got {parts.path!r})")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"{source}: vault.endpoint has an invalid port") from None
    if parts.scheme == "http" and not allow_plaintext and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{source}: vault.endpoint {url!r} is plain http to a remote host, which would send "
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


# --------------------------------------------------------------------------------------------
# client


class _Reply(NamedTuple):
    status: int
    body: dict[str, Any] | None
    retried: bool  # a transient failure happened first: a write may already have landed


class _TokenRejected(Exception):
    """Internal: the token is invalid; approle/kubernetes may log in again once."""


class VaultClient:
    """One Vault endpoint as ekm uses it. Never prints; raises EkmError subclasses."""

    def __init__(
        self,
        settings: VaultSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._hvac: Any = None
        self._logged_in = False
        self._secrets: list[str] = []
        self._kv_version: int | None = None

    # -- connection and login ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    def _where(self) -> str:
        ns = f" (namespace {self.settings.namespace})" if self.settings.namespace else ""
        return f"Vault at {self.endpoint}{ns}"

    def _connect(self) -> Any:
        """The hvac client (TLS session, headers), created on first use, not yet logged in."""
        if self._hvac is None:
            import hvac
            from hvac.adapters import RawAdapter

            s = self.settings
            if not s.verify:
                _warn_unverified(s.endpoint)
            self._hvac = hvac.Client(
                url=s.endpoint,
                token="",  # never let hvac fall back to VAULT_TOKEN or ~/.vault-token
                verify=s.verify_arg,
                cert=s.cert_arg,
                timeout=s.timeout,
                namespace=s.namespace,
                adapter=RawAdapter,
            )
            self._logged_in = False
        return self._hvac

    def _client(self) -> Any:
        """The hvac client with a token: read from its file or obtained by logging in."""
        client = self._connect()
        if not self._logged_in:
            self._login()
            self._logged_in = True
        return client

    def close(self) -> None:
        if self._hvac is not None:
            self._hvac.adapter.close()
            self._hvac = None

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remember_secret(self, value: str) -> str:
        if value:
            self._secrets.append(value)
        return value

    def _login(self) -> None:
        s = self.settings
        if s.auth_method == "token":
            token = s.token or ""
            if s.token_file is not None:
                token = _read_credential(s.token_file, "vault.token_file", private=True)
            self._hvac.token = self._remember_secret(token)
            return
        if s.auth_method == "approle":
            secret_id = _read_credential(s.secret_id_file, "vault.secret_id_file", private=True)
            self._remember_secret(secret_id)
            payload = {"role_id": s.role_id, "secret_id": secret_id}
            path = f"auth/{s.approle_mount}/login"
            what = f"the AppRole login ({path}); check vault.role_id and the secret ID file"
        else:
            jwt = _read_credential(
                s.service_account_token_path, "vault.service_account_token_path", private=False
            )
            self._remember_secret(jwt)
            payload = {"role": s.role, "jwt": jwt}
            path = f"auth/{s.kubernetes_mount}/login"
            what = (
                f"the Kubernetes login ({path}) for role {s.role!r}; check the role's bound "
                "service account and namespace"
            )
        self._hvac.token = ""
        reply = self._request("POST", path, json=payload, op="login")
        if reply.status in (400, 401, 403):
            raise BackendAuthError(f"{self._where()} rejected {what}")
        if reply.status != 200:
            self._fail(reply, "login", path)
        auth = (reply.body or {}).get("auth")
        token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise BackendError(f"{self._where()} answered the login without a client token")
        self._hvac.token = self._remember_secret(token)

    # -- transport ----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        op: str,
    ) -> _Reply:
        """Send one API call, retrying transient failures; return status and parsed body."""
        import requests

        client = self._hvac
        retried = False
        reason = ""
        retry_after: float | None = None
        for attempt in range(self._max_retries + 1):
            if attempt:
                retried = True
                self._sleep(self._delay(attempt, retry_after))
            retry_after = None
            try:
                resp = client.adapter.request(
                    method, f"/v1/{path}", json=json, params=params, raise_exception=False
                )
            except requests.exceptions.SSLError:
                raise BackendError(
                    f"TLS verification of {self._where()} failed; set vault.ca_cert to the CA "
                    "that signed its certificate and check the host name (or client certificate)"
                ) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
                reason = "is unreachable (connection refused or timed out)"
                continue
            except (requests.exceptions.RequestException, OSError) as exc:
                raise BackendError(
                    f"{self._where()}: {op} failed: {self._clean(type(exc).__name__)}"
                ) from None
            body = self._parse(resp, op)
            if resp.status_code in TRANSIENT_STATUS:
                reason = self._transient_reason(resp.status_code, body)
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                continue
            return _Reply(resp.status_code, body, retried)
        raise BackendError(
            f"{self._where()} {reason}; gave up on {op} after {self._max_retries + 1} attempts"
            + ("; unseal it (vault operator unseal)" if "sealed" in reason else "")
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        delay = random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not cryptography
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_backoff))
        return delay

    def _transient_reason(self, status: int, body: dict[str, Any] | None) -> str:
        text = _errors_text(body).lower()
        if status == 503 and "sealed" in text:
            return "is sealed"
        if status == 429:
            return "is rate-limiting requests or is a standby (HTTP 429)"
        if status == 503:
            return "is unavailable (HTTP 503: standby or maintenance)"
        return f"answered HTTP {status} (server error)"

    def _parse(self, resp: Any, op: str) -> dict[str, Any] | None:
        """The JSON object of an answer; Vault's answers are hostile input like any file.

        An oversized body or one nested deeper than the parser's recursion limit (which
        raised RecursionError, an internal-error traceback) is a BackendError, one line.
        """
        if not resp.content:
            return None
        if len(resp.content) > MAX_RESPONSE_BYTES:
            raise BackendError(
                f"{self._where()} returned an answer to {op} larger than "
                f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; refused"
            )
        try:
            body = resp.json()
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            if resp.status_code >= 400:
                return None
            raise BackendError(f"{self._where()} returned a malformed (non-JSON) answer to {op}")
        return body

    def _clean(self, text: str) -> str:
        """One printable line of at most 200 characters with every known secret removed."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        text = " ".join(text.split())
        text = "".join(c if c.isprintable() else "?" for c in text)
        return text[:200]

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        op: str,
    ) -> _Reply:
        """An authenticated call: token rejections become BackendAuthError (or a re-login)."""
        self._client()
        try:
            return self._call_once(method, path, json=json, params=params, op=op)
        except _TokenRejected:
            if self.settings.auth_method == "token":
                raise self._auth_error() from None
        self._login()  # approle / kubernetes: our token expired; log in again, once
        try:
            return self._call_once(method, path, json=json, params=params, op=op)
        except _TokenRejected:
            raise self._auth_error() from None

    def _call_once(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None,
        params: dict[str, str] | None,
        op: str,
    ) -> _Reply:
        reply = self._request(method, path, json=json, params=params, op=op)
        if reply.status == 403 and self._token_rejected(reply, path):
            raise _TokenRejected
        return reply

    def _token_rejected(self, reply: _Reply, path: str) -> bool:
        """Vault answers 403 both for a bad token and a policy denial; tell them apart."""
        text = _errors_text(reply.body).lower()
        if "invalid token" in text or not self._hvac.token:
            return True
        if path == "auth/token/lookup-self":
            return False
        probe = self._request("GET", "auth/token/lookup-self", op="token lookup")
        return probe.status == 403 and "invalid token" in _errors_text(probe.body).lower()

    def _auth_error(self) -> BackendAuthError:
        fix = {
            "token": "issue a new token and set VAULT_TOKEN or vault.token_file",
            "approle": "check the AppRole's token TTL and that the secret ID is still valid",
            "kubernetes": "check the Vault role's token TTL and bound service account",
        }[self.settings.auth_method]
        return BackendAuthError(f"{self._where()} rejected the token (expired or revoked); {fix}")

    def _fail(self, reply: _Reply, op: str, path: str) -> None:
        """Raise the EkmError for an unexpected answer (never returns)."""
        detail = self._clean(_errors_text(reply.body))
        if reply.status == 403:
            raise BackendError(
                f"{self._where()} denied {op} on {path} (permission denied); grant the "
                "token's policy the needed capability on that path (see docs/vault.md)"
            )
        if reply.status == 404:
            raise BackendError(
                f"{self._where()} has nothing at {path} ({op}); check the mount and vault.namespace"
            )
        suffix = f": {detail}" if detail else ""
        raise BackendError(f"{self._where()} refused {op} on {path} (HTTP {reply.status}){suffix}")

    # -- KV v2 ---------------------------------------------------------------------------

    def _kv_path(self, area: str, path: str, *, allow_empty: bool = False) -> str:
        segments = path.strip("/").split("/") if path.strip("/") else []
        if not segments and not allow_empty:
            raise InvalidError("a Vault KV path must not be empty")
        for seg in segments:
            if not _SEGMENT_RE.match(seg) or seg in (".", ".."):
                raise InvalidError(
                    f"{path!r} is not a safe Vault KV path; use letters, digits and _.-@:+= "
                    "separated by /"
                )
        rel = "/".join(quote(seg, safe="") for seg in segments)
        return f"{self.settings.mount_path}/{area}/{rel}".rstrip("/")

    def _kv_v1_error(self) -> BackendError:
        m = self.settings.mount_path
        return BackendError(
            f"{self._where()}: mount {m}/ is KV version 1 but ekm needs KV version 2; "
            f"upgrade it (vault kv enable-versioning {m}/) or set vault.mount_path to a kv-v2 mount"
        )

    def _detect_kv_version(self) -> int | None:
        """The KV version of ``mount_path`` or None when our policy cannot see the mounts."""
        m = self.settings.mount_path
        info: Any = None
        reply = self._call("GET", f"sys/internal/ui/mounts/{m}", op="mount lookup")
        if reply.status == 200 and reply.body:
            info = reply.body.get("data")
        else:
            reply = self._call("GET", "sys/mounts", op="mount lookup")
            if reply.status == 200 and reply.body:
                table = reply.body.get("data", reply.body)
                info = table.get(f"{m}/") if isinstance(table, dict) else None
        if not isinstance(info, dict):
            return None
        if info.get("type") not in ("kv", "generic"):
            raise BackendError(
                f"{self._where()}: mount {m}/ is a {self._clean(str(info.get('type')))} engine, "
                "not KV; set vault.mount_path to a kv-v2 mount"
            )
        options = info.get("options") or {}
        version = str(options.get("version", "1")) if isinstance(options, dict) else "1"
        return 2 if version == "2" else 1

    def check_kv_v2(self) -> None:
        """Refuse a KV v1 mount before anything is written to it (v1 would accept the write)."""
        if self._kv_version is None:
            self._kv_version = self._detect_kv_version() or 0
        if self._kv_version == 1:
            raise self._kv_v1_error()

    def kv_read(self, path: str) -> tuple[dict[str, Any], int] | None:
        """The latest version of a secret and its number, or None if it does not exist."""
        self.check_kv_v2()
        url = self._kv_path("data", path)
        reply = self._call("GET", url, op="KV read")
        body = reply.body or {}
        data = body.get("data")
        if reply.status == 404:
            meta = data.get("metadata") if isinstance(data, dict) else None
            if isinstance(meta, dict) and (meta.get("deletion_time") or meta.get("destroyed")):
                n = meta.get("version")
                raise BackendError(
                    f"{self._where()}: the latest version ({n}) of {url} is deleted or destroyed; "
                    f"undelete it (vault kv undelete -versions={n}) or remove the key in ekm"
                )
            return None
        if reply.status != 200:
            self._fail(reply, "KV read", url)
        if not isinstance(data, dict) or "metadata" not in data:
            raise self._kv_v1_error()
        secret, meta = data.get("data"), data.get("metadata")
        version = meta.get("version") if isinstance(meta, dict) else None
        if not isinstance(secret, dict) or not _is_version(version):
            raise BackendError(f"{self._where()} returned a malformed KV v2 answer for {url}")
        return secret, version

    def kv_write(self, path: str, data: dict[str, Any], *, cas: int) -> int:
        """Write a new version if the current one is still ``cas`` (0: must not exist yet).

        Returns the new version. Raises CasConflict when another writer got there first.
        """
        if isinstance(cas, bool) or not isinstance(cas, int) or cas < 0:
            raise InvalidError("kv_write needs cas = the version read (0 for a new secret)")
        if not isinstance(data, dict):
            raise InvalidError("kv_write needs a dict of data")
        self.check_kv_v2()
        url = self._kv_path("data", path)
        payload = {"data": data, "options": {"cas": cas}}
        reply = self._call("POST", url, json=payload, op="KV write")
        if reply.status == 400 and CAS_MISMATCH in _errors_text(reply.body):
            current = self._current_version(path)
            if reply.retried and current == cas + 1 and self._same(path, data):
                return current  # our first attempt landed; only its answer was lost
            raise CasConflict(
                f"{self._where()}: {url} changed since it was read (expected version {cas}, "
                f"now {current if current is not None else 'unknown'}); re-read it and retry",
                path=path,
                expected=cas,
                current=current,
            )
        if reply.status in (200, 204) and not (reply.body or {}).get("data"):
            raise self._kv_v1_error()
        if reply.status != 200:
            self._fail(reply, "KV write", url)
        version = _dict(_dict(reply.body).get("data")).get("version")
        if not _is_version(version) or version != cas + 1:
            raise BackendError(
                f"{self._where()} returned an unexpected version for {url} "
                f"(wrote over {cas}, got {self._clean(str(version))})"
            )
        return version

    def _current_version(self, path: str) -> int | None:
        reply = self._call("GET", self._kv_path("metadata", path), op="KV metadata read")
        data = (reply.body or {}).get("data") if reply.status == 200 else None
        version = data.get("current_version") if isinstance(data, dict) else None
        return version if _is_version(version) else None

    def _same(self, path: str, data: dict[str, Any]) -> bool:
        current = self.kv_read(path)
        return current is not None and current[0] == data

    def kv_list(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (sub-folders end with ``/``); [] if none."""
        url = self._kv_path("metadata", prefix, allow_empty=True) + "/"
        self.check_kv_v2()
        reply = self._call("LIST", url, op="KV list")
        if reply.status == 404:
            return []
        if reply.status != 200:
            self._fail(reply, "KV list", url)
        keys = _dict(_dict(reply.body).get("data")).get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BackendError(f"{self._where()} returned a malformed KV list for {url}")
        return keys

    def kv_delete_all(self, path: str) -> None:
        """Delete every version and the metadata of a secret (idempotent)."""
        self.check_kv_v2()
        url = self._kv_path("metadata", path)
        reply = self._call("DELETE", url, op="KV delete")
        if reply.status not in (200, 204, 404):
            self._fail(reply, "KV delete", url)

    # -- Transit -------------------------------------------------------------------------

    def _transit(self, area: str) -> str:
        return f"{self.settings.transit_mount}/{area}/{self.settings.transit_key}"

    def transit_ensure_key(
        self, type: str = "aes256-gcm96", *, derived: bool = False
    ) -> dict[str, Any]:
        """Create the Transit key if missing; refuse an existing key of another kind."""
        url = self._transit("keys")
        reply = self._call("GET", url, op="Transit key read")
        if reply.status == 404:
            body = {"type": type, "derived": derived}
            created = self._call("POST", url, json=body, op="Transit key create")
            if created.status not in (200, 204):
                self._fail(created, "Transit key create", url)
            reply = self._call("GET", url, op="Transit key read")
        if reply.status != 200:
            self._fail(reply, "Transit key read", url)
        info = (reply.body or {}).get("data")
        if not isinstance(info, dict):
            raise BackendError(f"{self._where()} returned a malformed Transit key for {url}")
        if info.get("type") != type or bool(info.get("derived")) != derived:
            raise BackendError(
                f"{self._where()}: Transit key {url} is {self._clean(str(info.get('type')))} "
                f"(derived={bool(info.get('derived'))}), not {type} (derived={derived}); "
                "set vault.transit_key to another name"
            )
        if info.get("supports_encryption") is False:
            raise BackendError(f"{self._where()}: Transit key {url} cannot encrypt")
        return {
            "type": info.get("type"),
            "derived": bool(info.get("derived")),
            "latest_version": info.get("latest_version"),
            "min_decryption_version": info.get("min_decryption_version"),
        }

    def transit_encrypt(self, plaintext: bytes, context: bytes | None = None) -> str:
        """Encrypt under the Transit key; returns ``vault:vN:...``."""
        url = self._transit("encrypt")
        body = {"plaintext": base64.b64encode(plaintext).decode()}
        if context is not None:
            body["context"] = base64.b64encode(context).decode()
        reply = self._call("POST", url, json=body, op="Transit encrypt")
        if reply.status != 200:
            self._fail(reply, "Transit encrypt", url)
        ct = _dict(_dict(reply.body).get("data")).get("ciphertext")
        if not isinstance(ct, str) or not _CIPHERTEXT_RE.match(ct):
            raise BackendError(f"{self._where()} returned a malformed Transit ciphertext")
        return ct

    def transit_decrypt(self, ciphertext: str, context: bytes | None = None) -> bytes:
        """Decrypt a ``vault:vN:...`` ciphertext; a bad one is an IntegrityError (exit 4)."""
        return self._transit_open("decrypt", ciphertext, context)

    def transit_rewrap(self, ciphertext: str, context: bytes | None = None) -> str:
        """Re-encrypt under the latest key version without the plaintext leaving Vault."""
        return self._transit_open("rewrap", ciphertext, context)

    def _transit_open(self, area: str, ciphertext: str, context: bytes | None) -> Any:
        if not isinstance(ciphertext, str) or not _CIPHERTEXT_RE.match(ciphertext):
            raise IntegrityError("not a Vault Transit ciphertext (expected vault:vN:<base64>)")
        url = self._transit(area)
        body = {"ciphertext": ciphertext}
        if context is not None:
            body["context"] = base64.b64encode(context).decode()
        op = f"Transit {area}"
        reply = self._call("POST", url, json=body, op=op)
        if reply.status == 400:
            text = _errors_text(reply.body).lower()
            if "key not found" in text:
                raise BackendError(
                    f"{self._where()}: Transit key {url} does not exist; check vault.transit_key"
                )
            why = "the ciphertext was tampered with, or the key or context is wrong"
            if "too old" in text or "disallowed" in text:
                why = "its key version is below the key's min_decryption_version"
            elif "invalid key version" in text:
                why = "it names a key version the Transit key does not have"
            raise IntegrityError(f"{self._where()} could not {area} with {url}: {why}")
        if reply.status != 200:
            self._fail(reply, op, url)
        data = _dict(_dict(reply.body).get("data"))
        if area == "rewrap":
            ct = data.get("ciphertext")
            if not isinstance(ct, str) or not _CIPHERTEXT_RE.match(ct):
                raise BackendError(f"{self._where()} returned a malformed Transit ciphertext")
            return ct
        plaintext = data.get("plaintext")
        try:
            if not isinstance(plaintext, str):  # a missing one decoded to b"" before
                raise ValueError("no plaintext")
            return base64.b64decode(plaintext, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise BackendError(f"{self._where()} returned malformed Transit plaintext") from None

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Seal state, version, identity and token TTL; never the token.

        A sealed Vault is reported (``sealed: True``), not raised: status is how an operator
        finds out. Unreachable or rejected-credential Vaults raise as everywhere else.
        """
        s = self.settings
        result: dict[str, Any] = {
            "endpoint": self.endpoint,
            "namespace": s.namespace,
            "auth_method": s.auth_method,
            "sealed": None,
            "version": None,
            "cluster": None,
            "identity": None,
            "policies": [],
            "token_ttl": None,
            "expire_time": None,
            "expires_soon": False,
            "kv_version": None,
        }
        self._connect()
        seal = self._request("GET", "sys/seal-status", op="seal status")
        if seal.status != 200 or not seal.body:
            self._fail(seal, "seal status", "sys/seal-status")
        body = seal.body or {}
        result["sealed"] = bool(body.get("sealed"))
        result["version"] = self._clean(str(body.get("version", ""))) or None
        result["cluster"] = self._clean(str(body.get("cluster_name") or "")) or None
        if result["sealed"]:
            return result
        reply = self._call("GET", "auth/token/lookup-self", op="token lookup")
        if reply.status == 200:
            data = _dict(_dict(reply.body).get("data"))
            ttl = data.get("ttl")
            ttl = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None
            policies = data.get("policies")
            result["identity"] = self._clean(str(data.get("display_name") or "")) or None
            result["policies"] = (
                [self._clean(p) for p in policies if isinstance(p, str)]
                if isinstance(policies, list)
                else []
            )
            result["token_ttl"] = ttl
            expire = data.get("expire_time")
            result["expire_time"] = self._clean(expire) if isinstance(expire, str) else None
            warn = s.token_warn_before.total_seconds()
            result["expires_soon"] = bool(ttl) and ttl < warn
        version = self._detect_kv_version()
        self._kv_version = version or 0
        result["kv_version"] = version
        return result


# --------------------------------------------------------------------------------------------
# helpers


_WARNED_UNVERIFIED: set[str] = set()


def _warn_unverified(endpoint: str) -> None:
    """Say once that ``verify = false`` is in force, instead of urllib3's per-request noise.

    Why: without TLS verification anyone on the path can impersonate Vault and collect the
    token; an operator who set it for a test must see it is still set. Raised as an
    EkmWarning (the CLI prints ``ekm: warning: ...``; the default filter shows it once).
    """
    import warnings

    from urllib3.exceptions import InsecureRequestWarning

    from ekm.errors import EkmWarning

    if endpoint in _WARNED_UNVERIFIED:
        return  # once per endpoint and process (changing filters resets Python's registry)
    _WARNED_UNVERIFIED.add(endpoint)
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    warnings.warn(
        EkmWarning(
            f"vault.verify = false: the TLS certificate of {endpoint} is not checked, so the "
            "token can be stolen by an impostor; set vault.ca_cert instead"
        ),
        stacklevel=3,
    )


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one.

    Why: a hostile or broken Vault may answer ``"data": []`` or ``"data": "x"``; chained
    ``.get`` on those raised AttributeError (an internal error) instead of the caller's
    "malformed answer" BackendError, which the empty dict leads to.
    """
    return value if isinstance(value, dict) else {}


def _errors_text(body: dict[str, Any] | None) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(e) for e in errors if isinstance(e, str | int | float))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _read_credential(path: Path | None, key: str, *, private: bool) -> str:
    """Read a token / secret ID / JWT file: bounded size, one printable line, 0600 if private."""
    from ekm.fsutil import check_private

    if path is None:
        raise ConfigError(f"{key} is not set")
    try:
        if private:
            check_private(path)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{key}: {path} is not a regular file")
        if st.st_size > MAX_CREDENTIAL_BYTES:
            raise ConfigError(f"{key}: {path} is larger than {MAX_CREDENTIAL_BYTES} bytes")
        raw = path.read_bytes()[: MAX_CREDENTIAL_BYTES + 1]
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"{key}: {path} is not readable by this user") from None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} does not hold a token (not ASCII)") from None
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        raise ConfigError(f"{key}: {path} must hold exactly one token on one line")
    return text
