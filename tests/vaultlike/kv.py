"""The KV secrets engine, versions 1 and 2, as Vault's HTTP API documents it.

Each engine answers ``handle(method, rel, query, body)`` with ``(status, body)`` where ``rel`` is
the path below the mount. The server does authentication and ACLs; ``capability`` tells it
which one a request needs (``create`` vs ``update`` depends on whether the secret exists, as
Vault's existence check does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

Reply = tuple[int, "dict[str, Any] | None"]

CAS_MISMATCH = "check-and-set parameter did not match the current version"
CAS_REQUIRED = "check-and-set parameter required for this call"
V2_BAD_PATH = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API "
    "endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."
)
DEFAULT_MAX_VERSIONS = 10


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


def _list_keys(paths: list[str], prefix: str) -> Reply:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    keys: set[str] = set()
    for p in paths:
        if p.startswith(prefix) and p != prefix:
            rest = p[len(prefix) :]
            head, sep, _ = rest.partition("/")
            keys.add(head + "/" if sep else head)
    if not keys:
        return 404, {"errors": []}
    return 200, {"data": {"keys": sorted(keys)}}


def _want_list(method: str, query: dict[str, str]) -> bool:
    return method == "LIST" or (method == "GET" and query.get("list") == "true")


class KVv1:
    """KV version 1: one unversioned value per path; writes answer 204 with no body."""

    version = 1

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}

    def capability(self, method: str, rel: str, query: dict[str, str]) -> str:
        if _want_list(method, query):
            return "list"
        if method in ("POST", "PUT"):
            return "update" if rel in self.secrets else "create"
        return {"GET": "read", "DELETE": "delete"}.get(method, "update")

    def handle(self, method: str, rel: str, query: dict[str, str], body: Any) -> Reply:
        if _want_list(method, query):
            return _list_keys(list(self.secrets), rel)
        if not rel:
            return 405, {"errors": ["unsupported operation"]}
        if method == "GET":
            if rel not in self.secrets:
                return 404, {"errors": []}
            return 200, {"data": dict(self.secrets[rel]), "lease_duration": 2764800}
        if method in ("POST", "PUT"):
            if not isinstance(body, dict) or not body:
                return 400, {"errors": ["missing data fields"]}
            self.secrets[rel] = dict(body)
            return 204, None
        if method == "DELETE":
            self.secrets.pop(rel, None)
            return 204, None
        return 405, {"errors": ["unsupported operation"]}


@dataclass
class _Secret:
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    current: int = 0
    oldest: int = 0
    cas_required: bool = False
    max_versions: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


class KVv2:
    """KV version 2: versioned secrets under data/, metadata/, delete/, undelete/, destroy/."""

    version = 2

    def __init__(self, *, cas_required: bool = False, max_versions: int = 0) -> None:
        self.secrets: dict[str, _Secret] = {}
        self.cas_required = cas_required
        self.max_versions = max_versions

    def capability(self, method: str, rel: str, query: dict[str, str]) -> str:
        if _want_list(method, query):
            return "list"
        if method in ("POST", "PUT"):
            area, _, path = rel.partition("/")
            if area == "data" and path not in self.secrets:
                return "create"
            return "update"
        return {"GET": "read", "DELETE": "delete"}.get(method, "update")

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, method: str, rel: str, query: dict[str, str], body: Any) -> Reply:
        area, _, path = rel.partition("/")
        if area == "config":
            return self._config(method, body)
        if area == "metadata" and _want_list(method, query):
            return _list_keys(list(self.secrets), path)
        if not path or area not in ("data", "metadata", "delete", "undelete", "destroy"):
            return 404, {"errors": [V2_BAD_PATH]}
        handler = getattr(self, f"_{area}")
        return handler(method, path, query, body)

    def _config(self, method: str, body: Any) -> Reply:
        if method == "GET":
            return 200, {
                "data": {
                    "cas_required": self.cas_required,
                    "max_versions": self.max_versions,
                    "delete_version_after": "0s",
                }
            }
        if isinstance(body, dict):
            self.cas_required = bool(body.get("cas_required", self.cas_required))
            self.max_versions = int(body.get("max_versions", self.max_versions))
        return 204, None

    def _version_meta(self, n: int, v: dict[str, Any]) -> dict[str, Any]:
        return {
            "created_time": _rfc3339(v["created"]),
            "custom_metadata": None,
            "deletion_time": _rfc3339(v["deleted"]) if v["deleted"] else "",
            "destroyed": v["destroyed"],
            "version": n,
        }

    def _data(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        secret = self.secrets.get(path)
        if method == "GET":
            if secret is None:
                return 404, {"errors": []}
            try:
                n = int(query.get("version", "0")) or secret.current
            except ValueError:
                return 400, {"errors": ["invalid version"]}
            v = secret.versions.get(n)
            if v is None:
                return 404, {"errors": []}
            meta = self._version_meta(n, v)
            if v["deleted"] or v["destroyed"]:
                return 404, {"data": {"data": None, "metadata": meta}}
            return 200, {"data": {"data": dict(v["data"]), "metadata": meta}}
        if method in ("POST", "PUT"):
            return self._write(path, secret, body)
        if method == "DELETE":
            if secret and secret.current in secret.versions:
                secret.versions[secret.current]["deleted"] = time.time()
            return 204, None
        return 405, {"errors": ["unsupported operation"]}

    def _write(self, path: str, secret: _Secret | None, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            return 400, {"errors": ["no data provided"]}
        options = body.get("options") or {}
        if not isinstance(options, dict):
            return 400, {"errors": ["invalid options"]}
        cas = options.get("cas")
        required = self.cas_required or (secret is not None and secret.cas_required)
        if cas is None and required:
            return 400, {"errors": [CAS_REQUIRED]}
        current = secret.current if secret else 0
        bad_type = not isinstance(cas, int) or isinstance(cas, bool)
        if cas is not None and (bad_type or cas != current):
            return 400, {"errors": [CAS_MISMATCH]}
        if secret is None:
            secret = self.secrets[path] = _Secret()
            secret.oldest = 1
        n = secret.current + 1
        now = time.time()
        secret.versions[n] = {
            "data": dict(body["data"]),
            "created": now,
            "deleted": 0.0,
            "destroyed": False,
        }
        secret.current, secret.updated = n, now
        keep = secret.max_versions or self.max_versions or DEFAULT_MAX_VERSIONS
        for old in sorted(secret.versions)[:-keep]:
            del secret.versions[old]
        secret.oldest = min(secret.versions)
        meta = self._version_meta(n, secret.versions[n])
        return 200, {"data": meta}

    def _metadata(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        secret = self.secrets.get(path)
        if method == "DELETE":
            self.secrets.pop(path, None)
            return 204, None
        if method in ("POST", "PUT"):
            if secret is None:
                secret = self.secrets[path] = _Secret()
            if isinstance(body, dict):
                secret.cas_required = bool(body.get("cas_required", secret.cas_required))
                secret.max_versions = int(body.get("max_versions", secret.max_versions))
            return 204, None
        if method != "GET":
            return 405, {"errors": ["unsupported operation"]}
        if secret is None:
            return 404, {"errors": []}
        return 200, {
            "data": {
                "cas_required": secret.cas_required,
                "created_time": _rfc3339(secret.created),
                "current_version": secret.current,
                "max_versions": secret.max_versions,
                "oldest_version": secret.oldest,
                "updated_time": _rfc3339(secret.updated),
                "custom_metadata": None,
                "delete_version_after": "0s",
                "versions": {
                    str(n): self._version_meta(n, v) for n, v in sorted(secret.versions.items())
                },
            }
        }

    def _versions_arg(self, body: Any) -> list[int] | None:
        if not isinstance(body, dict) or not isinstance(body.get("versions"), list):
            return None
        out = [v for v in body["versions"] if isinstance(v, int) and not isinstance(v, bool)]
        return out or None

    def _mark(self, path: str, body: Any, field_name: str, value: Any) -> Reply:
        versions = self._versions_arg(body)
        if versions is None:
            return 400, {"errors": ["no version number provided"]}
        secret = self.secrets.get(path)
        if secret:
            for n in versions:
                if n in secret.versions and not secret.versions[n]["destroyed"]:
                    secret.versions[n][field_name] = value
        return 204, None

    def _delete(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        return self._mark(path, body, "deleted", time.time())

    def _undelete(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        return self._mark(path, body, "deleted", 0.0)

    def _destroy(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        reply = self._mark(path, body, "destroyed", True)
        secret = self.secrets.get(path)
        for v in secret.versions.values() if secret else ():
            if v["destroyed"]:
                v["data"] = {}
        return reply
