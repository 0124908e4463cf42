"""The Vault / OpenBao client ekm uses: KV v2 with check-and-set, Transit wrap/unwrap, status.

Why this shape:
- hvac (and through it requests) is imported only when a Vault backend is used, inside
  :meth:`VaultClient._connect`, so ``import ekm`` and ``ekm rotate --check`` stay fast.
- Every call goes through hvac's high-level API (``secrets.kv.v2``, ``secrets.transit``,
  ``auth.approle``, ``auth.kubernetes``, ``auth.token``, ``sys``) over
  :class:`~ekm.backends.vault.transport.FailoverAdapter`, which never raises hvac's exceptions:
  every status code is interpreted here, in one place, so each fault (unreachable, sealed,
  expired token, policy denial, KV v1 mount, CAS conflict, TLS failure) becomes one one-line
  :class:`~ekm.errors.EkmError` naming the node and the fix. Retries and failover between the
  nodes of ``[vault] endpoints`` live in the adapter.
- Auth failures and policy denials are never retried: retrying cannot fix them and only hides
  them. Both are exit 4 (refused), a policy denial names the path and the missing capability.
- Every KV write carries ``cas``: two hosts rotating at once cannot overwrite each other's
  version; the loser gets :class:`CasConflict`, re-reads and decides again.
- No message, log or exception ever contains the token, secret ID, JWT or any plaintext.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ekm.backends.vault.settings import _SEGMENT_RE, VaultSettings
from ekm.backends.vault.transit import TransitOps
from ekm.backends.vault.util import (
    CAS_MISMATCH,
    MAX_RESPONSE_BYTES,
    CasConflict,
    _dict,
    _errors_text,
    _is_version,
    _read_credential,
    _warn_unverified,
)
from ekm.errors import BackendAuthError, BackendError, InvalidError


class PolicyDenied(BackendAuthError):
    """The token is valid but its policy lacks a capability on a path (exit 4, refused)."""


class _Reply(NamedTuple):
    status: int
    body: dict[str, Any] | None
    retried: bool  # a transient failure happened first: a write may already have landed


class _TokenRejected(Exception):
    """Internal: the token is invalid; approle/kubernetes may log in again once."""


#: What each verb needs in a Vault policy (for the message of a denial).
_CAPABILITY = {"GET": "read", "LIST": "list", "DELETE": "delete", "POST": "update"}


class VaultClient(TransitOps):
    """One Vault cluster (one or more nodes) as ekm uses it. Never prints; raises EkmErrors."""

    def __init__(
        self,
        settings: VaultSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 2,
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
        self.renewed = False

    # -- connection and login ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The node ekm talks to now (the first of ``endpoints`` until a failover)."""
        if self._hvac is not None:
            return str(self._hvac.adapter.current)
        return self.settings.endpoint

    def _where(self) -> str:
        ns = f" (namespace {self.settings.namespace})" if self.settings.namespace else ""
        return f"Vault at {self.endpoint}{ns}"

    def _connect(self) -> Any:
        """The hvac client (TLS session, headers, failover), created on first use."""
        if self._hvac is None:
            import hvac

            from ekm.backends.vault.transport import FailoverAdapter

            s = self.settings
            if not s.verify:
                _warn_unverified(s.endpoint)
            adapter = FailoverAdapter(
                s,
                sleep=self._sleep,
                max_retries=self._max_retries,
                backoff=self._backoff,
                max_backoff=self._max_backoff,
            )
            adapter.clean = self._clean
            # token="" so hvac never falls back to VAULT_TOKEN or ~/.vault-token
            # hvac builds its API classes around the adapter it is given at construction
            # (setting Client.adapter later misses secrets.kv.v2), so hand ours over here.
            self._hvac = hvac.Client(
                url=s.endpoint, token="", verify=s.verify_arg, adapter=lambda **_kw: adapter
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
        hv = self._hvac
        if s.auth_method == "token":
            token = s.token or ""
            if s.token_file is not None:
                token = _read_credential(s.token_file, "vault.token_file", private=True)
            hv.token = self._remember_secret(token)
            return
        hv.token = ""
        if s.auth_method == "approle":
            secret_id = _read_credential(s.secret_id_file, "vault.secret_id_file", private=True)
            self._remember_secret(secret_id)
            path = f"auth/{s.approle_mount}/login"
            what = f"the AppRole login ({path}); check vault.role_id and the secret ID file"
            reply = self._send(
                lambda c: c.auth.approle.login(
                    s.role_id, secret_id, use_token=False, mount_point=s.approle_mount
                ),
                "login",
            )
        else:
            jwt = _read_credential(
                s.service_account_token_path, "vault.service_account_token_path", private=False
            )
            self._remember_secret(jwt)
            path = f"auth/{s.kubernetes_mount}/login"
            what = (
                f"the Kubernetes login ({path}) for role {s.role!r}; check the role's bound "
                "service account and namespace"
            )
            reply = self._send(
                lambda c: c.auth.kubernetes.login(
                    s.role, jwt, use_token=False, mount_point=s.kubernetes_mount
                ),
                "login",
            )
        if reply.status in (400, 401, 403):
            raise BackendAuthError(f"{self._where()} rejected {what}")
        if reply.status != 200:
            self._fail(reply, "login", path)
        auth = (reply.body or {}).get("auth")
        token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise BackendError(f"{self._where()} answered the login without a client token")
        hv.token = self._remember_secret(token)

    # -- transport ----------------------------------------------------------------------

    def _send(self, call: Callable[[Any], Any], op: str) -> _Reply:
        """Run one hvac call through the failover adapter; return status and parsed body."""
        client = self._hvac
        client.adapter.op = op
        resp = call(client)
        return _Reply(resp.status_code, self._parse(resp, op), bool(resp.ekm_retried))

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

    def _prefer_active(self) -> None:
        """With several nodes, talk to the active one: reads then see every host's writes.

        A standby answers reads from its own replica, which can lag the leader by a moment;
        ``X-Vault-Index`` covers this process's own writes, but not a rotation another host
        just made. ``sys/leader`` names the active node; it is used when it is one of
        ``[vault] endpoints`` (a leader address the operator did not list is not trusted).
        """
        adapter = self._hvac.adapter
        if not adapter.needs_leader:
            return
        adapter.needs_leader = False
        reply = self._send(lambda c: c.sys.read_leader_status(), "leader lookup")
        leader = _dict(reply.body).get("leader_address") if reply.status == 200 else None
        if isinstance(leader, str) and leader.rstrip("/") in adapter.endpoints:
            adapter.current = leader.rstrip("/")

    def _call(self, call: Callable[[Any], Any], op: str, path: str) -> _Reply:
        """An authenticated call: token rejections become BackendAuthError (or a re-login)."""
        self._client()
        self._prefer_active()
        try:
            return self._call_once(call, op, path)
        except _TokenRejected:
            if self.settings.auth_method == "token":
                raise self._auth_error() from None
        self._login()  # approle / kubernetes: our token expired; log in again, once
        try:
            return self._call_once(call, op, path)
        except _TokenRejected:
            raise self._auth_error() from None

    def _call_once(self, call: Callable[[Any], Any], op: str, path: str) -> _Reply:
        reply = self._send(call, op)
        if reply.status == 403 and self._token_rejected(reply, path):
            raise _TokenRejected
        return reply

    def _token_rejected(self, reply: _Reply, path: str) -> bool:
        """Vault answers 403 both for a bad token and a policy denial; tell them apart.

        Vault says "invalid token"; OpenBao says only "permission denied". Every live token
        may look itself up (the default policy grants it), so a 403 there means the token
        itself is expired or revoked.
        """
        text = _errors_text(reply.body).lower()
        if "invalid token" in text or not self._hvac.token:
            return True
        if path == "auth/token/lookup-self":
            return False
        probe = self._send(lambda c: c.auth.token.lookup_self(), "token lookup")
        return probe.status == 403

    def _auth_error(self) -> BackendAuthError:
        fix = {
            "token": "issue a new token and set VAULT_TOKEN or vault.token_file",
            "approle": "check the AppRole's token TTL and that the secret ID is still valid",
            "kubernetes": "check the Vault role's token TTL and bound service account",
        }[self.settings.auth_method]
        return BackendAuthError(f"{self._where()} rejected the token (expired or revoked); {fix}")

    def _fail(self, reply: _Reply, op: str, path: str, capability: str | None = None) -> None:
        """Raise the EkmError for an unexpected answer (never returns)."""
        detail = self._clean(_errors_text(reply.body))
        if reply.status == 403:
            needed = f"the {capability!r} capability" if capability else "a capability"
            raise PolicyDenied(
                f"{self._where()} denied {op} on {path} (permission denied): the token's "
                f"policy lacks {needed} on {path}; grant it (see docs/vault.md)"
            )
        if reply.status == 404:
            raise BackendError(
                f"{self._where()} has nothing at {path} ({op}); check the mount and vault.namespace"
            )
        suffix = f": {detail}" if detail else ""
        raise BackendError(f"{self._where()} refused {op} on {path} (HTTP {reply.status}){suffix}")

    # -- KV v2 ---------------------------------------------------------------------------

    def _kv_rel(self, path: str, *, allow_empty: bool = False) -> str:
        """The checked secret path below the mount (hvac URL-quotes each segment)."""
        segments = path.strip("/").split("/") if path.strip("/") else []
        if not segments and not allow_empty:
            raise InvalidError("a Vault KV path must not be empty")
        for seg in segments:
            if not _SEGMENT_RE.match(seg) or seg in (".", ".."):
                raise InvalidError(
                    f"{path!r} is not a safe Vault KV path; use letters, digits and _.-@:+= "
                    "separated by /"
                )
        return "/".join(segments)

    def _kv_path(self, area: str, path: str, *, allow_empty: bool = False) -> str:
        """The API path of a secret, for messages (``secret/data/ekm/keys/alpha``)."""
        rel = self._kv_rel(path, allow_empty=allow_empty)
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
        # hvac has no call for sys/internal/ui/mounts/<mount>, the one mount lookup any token
        # with a capability under the mount may make; the adapter's plain GET is used.
        ui = f"sys/internal/ui/mounts/{m}"
        reply = self._call(lambda c: c.adapter.get(f"/v1/{ui}"), "mount lookup", ui)
        if reply.status == 200 and reply.body:
            info = reply.body.get("data")
        else:
            reply = self._call(
                lambda c: c.sys.list_mounted_secrets_engines(), "mount lookup", "sys/mounts"
            )
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
        url, rel, m = self._kv_path("data", path), self._kv_rel(path), self.settings.mount_path
        reply = self._call(
            lambda c: c.secrets.kv.v2.read_secret_version(
                rel, mount_point=m, raise_on_deleted_version=True
            ),
            "KV read",
            url,
        )
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
            self._fail(reply, "KV read", url, "read")
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
        url, rel, m = self._kv_path("data", path), self._kv_rel(path), self.settings.mount_path
        reply = self._call(
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                rel, secret=data, cas=cas, mount_point=m
            ),
            "KV write",
            url,
        )
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
            self._fail(reply, "KV write", url, "create" if cas == 0 else "update")
        version = _dict(_dict(reply.body).get("data")).get("version")
        if not _is_version(version) or version != cas + 1:
            raise BackendError(
                f"{self._where()} returned an unexpected version for {url} "
                f"(wrote over {cas}, got {self._clean(str(version))})"
            )
        return version

    def _current_version(self, path: str) -> int | None:
        url, rel, m = self._kv_path("metadata", path), self._kv_rel(path), self.settings.mount_path
        reply = self._call(
            lambda c: c.secrets.kv.v2.read_secret_metadata(rel, mount_point=m),
            "KV metadata read",
            url,
        )
        data = (reply.body or {}).get("data") if reply.status == 200 else None
        version = data.get("current_version") if isinstance(data, dict) else None
        return version if _is_version(version) else None

    def _same(self, path: str, data: dict[str, Any]) -> bool:
        current = self.kv_read(path)
        return current is not None and current[0] == data

    def kv_list(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (sub-folders end with ``/``); [] if none."""
        url = self._kv_path("metadata", prefix, allow_empty=True) + "/"
        rel, m = self._kv_rel(prefix, allow_empty=True), self.settings.mount_path
        self.check_kv_v2()
        reply = self._call(
            lambda c: c.secrets.kv.v2.list_secrets(rel, mount_point=m), "KV list", url
        )
        if reply.status == 404:
            return []
        if reply.status != 200:
            self._fail(reply, "KV list", url, "list")
        keys = _dict(_dict(reply.body).get("data")).get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BackendError(f"{self._where()} returned a malformed KV list for {url}")
        return keys

    def kv_delete_all(self, path: str) -> None:
        """Delete every version and the metadata of a secret (idempotent)."""
        self.check_kv_v2()
        url, rel, m = self._kv_path("metadata", path), self._kv_rel(path), self.settings.mount_path
        reply = self._call(
            lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(rel, mount_point=m),
            "KV delete",
            url,
        )
        if reply.status not in (200, 204, 404):
            self._fail(reply, "KV delete", url, "delete")

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
            "renewed": False,
        }
        self._connect()
        seal = self._send(lambda c: c.sys.read_seal_status(), "seal status")
        if seal.status != 200 or not seal.body:
            self._fail(seal, "seal status", "sys/seal-status")
        body = seal.body or {}
        result["sealed"] = bool(body.get("sealed"))
        result["version"] = self._clean(str(body.get("version", ""))) or None
        result["cluster"] = self._clean(str(body.get("cluster_name") or "")) or None
        if result["sealed"]:
            return result
        reply = self._call(
            lambda c: c.auth.token.lookup_self(), "token lookup", "auth/token/lookup-self"
        )
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
            if result["expires_soon"] and data.get("renewable") is True:
                renewed = self.renew_token(int(2 * warn))
                if renewed is not None:
                    result["token_ttl"], result["renewed"] = renewed, True
                    result["expires_soon"] = renewed < warn
        version = self._detect_kv_version()
        self._kv_version = version or 0
        result["kv_version"] = version
        return result

    def renew_token(self, increment: int) -> int | None:
        """Renew this token by up to ``increment`` seconds; the new TTL, or None if refused.

        Why: a cron job's token that nobody renews expires and every run after fails; ekm
        renews it when ``ekm status --vault`` finds it expiring within token_warn_before
        (the server caps the TTL at the token's max TTL). Never raises for a refusal: the
        warning about the expiring token stays.
        """
        reply = self._call(
            lambda c: c.auth.token.renew_self(increment=increment),
            "token renewal",
            "auth/token/renew-self",
        )
        auth = _dict(_dict(reply.body).get("auth")) if reply.status == 200 else {}
        ttl = auth.get("lease_duration")
        return ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None
