"""A small Vault-API-compatible server for ekm's tests (standard library only).

It implements exactly the endpoints ekm uses, with Vault's documented status codes and error
bodies (``{"errors": [...]}``), the ``X-Vault-Token`` and ``X-Vault-Namespace`` headers, KV v1
and v2, Transit, token/AppRole/Kubernetes auth, sys/health, sys/seal-status and sys/mounts.
Tests drive faults through control methods: :meth:`VaultLike.seal`, :meth:`VaultLike.revoke`,
:meth:`VaultLike.set_policy`, :meth:`VaultLike.fail_next`, :meth:`VaultLike.enable_kv` with
``version=1``. Serve HTTPS by passing ``tls=(certfile, keyfile)`` (and ``client_ca`` to require
client certificates).

Simplifications (documented so nobody mistakes this for Vault): policies are global rather than
per namespace; Transit's cipher is HMAC-based, not AES-GCM; tokens expire by wall clock.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.vaultlike.kv import KVv1, KVv2
from tests.vaultlike.policy import any_capability_under, capabilities
from tests.vaultlike.transit import Transit

Reply = tuple[int, "dict[str, Any] | None"]

PERMISSION_DENIED = "1 error occurred:\n\t* permission denied\n\n"
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
SEALED = "Vault is sealed"
MAX_BODY = 1 << 20
_FAILURE_TEXT = {
    429: 'request path "{path}": rate limit quota exceeded',
    500: "internal error",
    502: "bad gateway",
    503: SEALED,
}


@dataclass
class _Token:
    policies: list[str]
    ttl: int
    display_name: str
    namespace: str
    created: float = field(default_factory=time.time)
    accessor: str = field(default_factory=lambda: secrets.token_hex(12))

    def remaining(self) -> int:
        if not self.ttl:
            return 0
        return max(0, int(self.created + self.ttl - time.time()))

    def expired(self) -> bool:
        return bool(self.ttl) and time.time() >= self.created + self.ttl


@dataclass
class _AuthMount:
    kind: str  # "approle" | "kubernetes"
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)


class VaultLike:
    """A Vault-like server on 127.0.0.1: ``start() -> url``, ``stop()``, control methods."""

    version = "1.17.2"
    cluster_name = "vaultlike-cluster"

    def __init__(self, *, tls: tuple[str, str] | None = None, client_ca: str | None = None) -> None:
        self.root_token = "hvs." + secrets.token_urlsafe(18)
        self._tls = tls
        self._client_ca = client_ca
        self._lock = threading.RLock()
        self._sealed = False
        self._tokens: dict[str, _Token] = {
            self.root_token: _Token(["root"], 0, "root", ""),
        }
        self._policies: dict[str, dict[str, list[str]]] = {}
        self._mounts: dict[str, dict[str, Any]] = {"": {"secret/": KVv2()}}
        self._auth: dict[str, dict[str, _AuthMount]] = {"": {}}
        self._failures: list[tuple[int, str | None]] = []
        self._lost_answers = 0
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on an ephemeral port of 127.0.0.1 and return the base URL."""
        handler = type("Handler", (_Handler,), {"vault": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        scheme = "http"
        if self._tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self._tls)
            if self._client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self._client_ca)
            server.socket = ctx.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
            scheme = "https"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> VaultLike:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control --------------------------------------------------------------------------

    def seal(self) -> None:
        with self._lock:
            self._sealed = True

    def unseal(self) -> None:
        with self._lock:
            self._sealed = False

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def create_token(
        self,
        policies: list[str],
        ttl: int = 0,
        *,
        display_name: str = "token",
        namespace: str = "",
    ) -> str:
        """A service token with ``policies`` (+ default) and ``ttl`` seconds (0: no expiry)."""
        token = "hvs." + secrets.token_urlsafe(18)
        names = list(dict.fromkeys([*policies, "default"]))
        with self._lock:
            self._tokens[token] = _Token(names, ttl, display_name, namespace.strip("/"))
        return token

    def set_policy(self, name: str, rules: dict[str, list[str]]) -> None:
        with self._lock:
            self._policies[name] = {k: list(v) for k, v in rules.items()}

    def fail_next(self, n: int, status: int, message: str | None = None) -> None:
        """Answer the next ``n`` requests (any path) with ``status`` and a Vault error body."""
        with self._lock:
            self._failures.extend([(status, message)] * n)

    def lose_next_answers(self, n: int) -> None:
        """Process the next ``n`` requests but answer 502, as a proxy dropping a reply would."""
        with self._lock:
            self._lost_answers += n

    def enable_kv(
        self, mount: str, version: int = 2, *, namespace: str = "", cas_required: bool = False
    ) -> None:
        engine: Any = KVv2(cas_required=cas_required) if version == 2 else KVv1()
        self._mount(namespace, mount, engine)

    def enable_transit(self, mount: str = "transit", *, namespace: str = "") -> None:
        self._mount(namespace, mount, Transit())

    def enable_approle(
        self,
        role_id: str,
        secret_id: str,
        policies: list[str],
        *,
        mount: str = "approle",
        ttl: int = 3600,
        namespace: str = "",
    ) -> None:
        am = self._auth_mount(namespace, mount, "approle")
        am.roles[role_id] = {"secret_id": secret_id, "policies": policies, "ttl": ttl}

    def enable_kubernetes(
        self,
        role: str,
        jwt: str,
        policies: list[str],
        *,
        mount: str = "kubernetes",
        ttl: int = 3600,
        namespace: str = "",
    ) -> None:
        am = self._auth_mount(namespace, mount, "kubernetes")
        am.roles[role] = {"jwt": jwt, "policies": policies, "ttl": ttl}

    def transit_engine(self, mount: str = "transit", namespace: str = "") -> Transit:
        """The engine object, for assertions (key versions) and direct rotation."""
        return self._mounts[namespace.strip("/")][mount.strip("/") + "/"]

    def _mount(self, namespace: str, mount: str, engine: Any) -> None:
        with self._lock:
            self._mounts.setdefault(namespace.strip("/"), {})[mount.strip("/") + "/"] = engine

    def _auth_mount(self, namespace: str, mount: str, kind: str) -> _AuthMount:
        with self._lock:
            mounts = self._auth.setdefault(namespace.strip("/"), {})
            am = mounts.get(mount.strip("/"))
            if am is None or am.kind != kind:
                am = mounts[mount.strip("/")] = _AuthMount(kind)
            return am

    # -- request handling (called from handler threads) ----------------------------------

    def dispatch(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: Any
    ) -> Reply:
        namespace = (headers.get("X-Vault-Namespace") or "").strip("/")
        token = headers.get("X-Vault-Token") or ""
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": dict(query),
                    "namespace": namespace,
                    "token_sent": bool(token),
                    "body": body,
                }
            )
            if self._failures:
                status, message = self._failures.pop(0)
                text = message or _FAILURE_TEXT.get(status, "injected failure")
                return status, {"errors": [text.format(path=path)]}
            if path == "sys/health":
                return self._health(query)
            if path == "sys/seal-status":
                return 200, self._seal_status()
            if self._sealed:
                return 503, {"errors": [SEALED]}
            login = self._login(namespace, method, path, body)
            if login is not None:
                return login
            if not token:
                return 403, {"errors": ["permission denied"]}
            info = self._tokens.get(token)
            if info is None or info.expired() or not _ns_ok(info.namespace, namespace):
                self._tokens.pop(token, None) if info and info.expired() else None
                return 403, {"errors": [INVALID_TOKEN]}
            reply = self._route(method, path, query, body, info, namespace)
            if self._lost_answers:
                self._lost_answers -= 1
                return 502, {"errors": ["bad gateway"]}
            return reply

    def _health(self, query: dict[str, str]) -> Reply:
        body = {
            "initialized": True,
            "sealed": self._sealed,
            "standby": False,
            "performance_standby": False,
            "server_time_utc": int(time.time()),
            "version": self.version,
            "cluster_name": self.cluster_name,
            "cluster_id": "00000000-0000-4000-8000-000000000000",
        }
        if self._sealed:
            return int(query.get("sealedcode", 503)), body
        return 200, body

    def _seal_status(self) -> dict[str, Any]:
        return {
            "type": "shamir",
            "initialized": True,
            "sealed": self._sealed,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": self.version,
            "build_date": "2024-01-01T00:00:00Z",
            "migration": False,
            "cluster_name": "" if self._sealed else self.cluster_name,
            "cluster_id": "" if self._sealed else "00000000-0000-4000-8000-000000000000",
            "recovery_seal": False,
            "storage_type": "inmem",
        }

    def _login(self, namespace: str, method: str, path: str, body: Any) -> Reply | None:
        parts = path.split("/")
        if len(parts) < 3 or parts[0] != "auth" or parts[-1] != "login":
            return None
        am = self._auth.get(namespace, {}).get("/".join(parts[1:-1]))
        if am is None:
            return None
        if method not in ("POST", "PUT"):
            return 405, {"errors": ["unsupported operation"]}
        body = body if isinstance(body, dict) else {}
        if am.kind == "approle":
            role = am.roles.get(str(body.get("role_id", "")))
            if not body.get("role_id"):
                return 400, {"errors": ["missing role_id"]}
            if role is None:
                return 400, {"errors": ["invalid role ID"]}
            if not secrets.compare_digest(str(body.get("secret_id", "")), role["secret_id"]):
                return 400, {"errors": ["invalid secret id"]}
            name = "approle"
        else:
            role = am.roles.get(str(body.get("role", "")))
            if role is None:
                return 400, {"errors": [f'invalid role name "{body.get("role", "")}"']}
            if not secrets.compare_digest(str(body.get("jwt", "")), role["jwt"]):
                return 403, {"errors": ["permission denied"]}
            name = f"kubernetes-{body.get('role')}"
        token = self.create_token(
            role["policies"], role["ttl"], display_name=name, namespace=namespace
        )
        info = self._tokens[token]
        return 200, {
            "auth": {
                "client_token": token,
                "accessor": info.accessor,
                "policies": info.policies,
                "token_policies": info.policies,
                "lease_duration": role["ttl"],
                "renewable": True,
                "metadata": {},
            }
        }

    def _allowed(self, info: _Token, path: str, cap: str) -> bool:
        caps = capabilities(self._policies, info.policies, path)
        return cap in caps and "deny" not in caps

    def _find_mount(self, namespace: str, path: str) -> tuple[str, Any] | None:
        mounts = self._mounts.get(namespace, {})
        best = None
        for m in mounts:
            if (path + "/").startswith(m) and (best is None or len(m) > len(best)):
                best = m
        return (best, mounts[best]) if best else None

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, info: _Token, ns: str
    ) -> Reply:
        if path == "auth/token/lookup-self":
            if not self._allowed(info, path, "read"):
                return 403, {"errors": [PERMISSION_DENIED]}
            return 200, {"data": self._lookup(info)}
        if path == "sys/mounts":
            if not self._allowed(info, path, "read"):
                return 403, {"errors": [PERMISSION_DENIED]}
            table = {m: _mount_info(e) for m, e in self._mounts.get(ns, {}).items()}
            return 200, {**table, "data": table}
        if path.startswith("sys/internal/ui/mounts/"):
            target = path[len("sys/internal/ui/mounts/") :]
            found = self._find_mount(ns, target)
            if found is None:
                return 400, {"errors": [f"Path {target!r} does not match any mount"]}
            if not any_capability_under(self._policies, info.policies, found[0]):
                return 403, {"errors": [PERMISSION_DENIED]}
            return 200, {"data": {**_mount_info(found[1]), "path": found[0]}}
        found = self._find_mount(ns, path)
        cap = found[1].capability(method, path[len(found[0]) :], query) if found else "update"
        if method == "GET" and query.get("list") == "true":
            cap = "list"
        if not self._allowed(info, path, cap):
            return 403, {"errors": [PERMISSION_DENIED]}
        if found is None:
            return 404, {"errors": [f'no handler for route "{path}". route entry not found.']}
        return found[1].handle(method, path[len(found[0]) :], query, body)

    def _lookup(self, info: _Token) -> dict[str, Any]:
        expire = None
        if info.ttl:
            end = info.created + info.ttl
            expire = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end)) + ".000000Z"
        token = next(t for t, i in self._tokens.items() if i is info)
        return {
            "accessor": info.accessor,
            "creation_time": int(info.created),
            "creation_ttl": info.ttl,
            "display_name": info.display_name,
            "entity_id": "",
            "expire_time": expire,
            "explicit_max_ttl": 0,
            "id": token,  # real Vault echoes the token here; clients must never print it
            "meta": None,
            "num_uses": 0,
            "orphan": info.policies == ["root"],
            "path": "auth/token/create",
            "policies": info.policies,
            "renewable": bool(info.ttl),
            "ttl": info.remaining(),
            "type": "service",
            "namespace_path": info.namespace + "/" if info.namespace else "",
        }


def _ns_ok(token_ns: str, request_ns: str) -> bool:
    return not token_ns or request_ns == token_ns or request_ns.startswith(token_ns + "/")


def _mount_info(engine: Any) -> dict[str, Any]:
    if isinstance(engine, Transit):
        return {"type": "transit", "options": None, "description": "", "accessor": "transit_1"}
    return {
        "type": "kv",
        "options": {"version": str(engine.version)},
        "description": "",
        "accessor": f"kv_{engine.version}",
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    vault: VaultLike

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"errors": ["request body too large"]})
            return
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {"errors": ["failed to parse JSON input: invalid JSON"]})
                return
        if not parts.path.startswith("/v1/"):
            self._send(404, {"errors": []})
            return
        path = parts.path[len("/v1/") :].strip("/")
        if parts.path.endswith("/") and self.command in ("LIST", "GET"):
            path += "/" if query.get("list") == "true" or self.command == "LIST" else ""
        status, reply = self.vault.dispatch(self.command, path, query, self.headers, body)
        if reply is not None and status < 400 and ("data" in reply or "auth" in reply):
            reply = {
                "request_id": str(uuid.uuid4()),
                "lease_id": "",
                "renewable": False,
                "lease_duration": 0,
                "wrap_info": None,
                "warnings": None,
                "auth": None,
                **reply,
            }
        self._send(status, reply)

    def _send(self, status: int, reply: dict[str, Any] | None) -> None:
        data = b"" if reply is None or status == 204 else json.dumps(reply).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _serve
