"""How ekm reaches a Vault / OpenBao cluster: hvac's adapter, urllib3's Retry, node failover.

Why this shape:

* hvac's high-level API (``secrets.kv.v2``, ``secrets.transit``, ``auth.approle``, ``sys``)
  sends every call through one *adapter*; :class:`FailoverAdapter` is that adapter. It is a
  :class:`hvac.adapters.RawAdapter` (so ekm sees each status code and interprets it in one
  place) whose ``request`` knows every node of the cluster: hvac itself talks to one URL and
  has no notion of a cluster, which is the one thing written here by hand.
* Retries at one node (HTTP 429, 500, 502, 504, honouring ``Retry-After``) are urllib3's
  :class:`~urllib3.util.retry.Retry` mounted on the requests session. Connection failures,
  sealed nodes, standbys that redirect to a dead leader and elections ("too many redirects",
  HTTP 503 or 412) move to the next node in ``[vault] endpoints``; rounds repeat with jittered
  backoff until ``failover_timeout`` seconds have passed, then ekm reports which node failed
  and how.
* Redirects are followed here, not by requests: a 307 from a standby names the leader, and when
  that leader is dead the failure is a transient "leader unreachable", named as such, instead of
  requests' generic error. A redirect never downgrades https to http.
* Read-your-writes: every request carries ``X-Vault-Inconsistent: forward-active-node`` and the
  newest ``X-Vault-Index`` this process has seen, so a standby that has not yet applied our own
  last write forwards the request to the active node instead of answering from a stale replica.
  (Reads of *another* host's writes go through the active node: see
  :meth:`ekm.backends.vault.client.VaultClient._prefer_active`.)
* A TLS failure is fatal and immediate: the handshake fails before any HTTP byte (and so the
  token) is sent, and retrying cannot fix a wrong CA or host name.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from hvac.adapters import RawAdapter

from ekm.backends.vault.settings import VaultSettings
from ekm.backends.vault.util import _errors_text
from ekm.errors import BackendError, EkmWarning

#: Statuses urllib3 retries at the same node (503 is handled here: sealed moves on at once).
RETRY_STATUS = frozenset({429, 500, 502, 504})
#: Statuses that mean "this node cannot serve now; try another one".
FAILOVER_STATUS = frozenset({412, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 3
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


def build_retry(
    max_retries: int, backoff: float, max_backoff: float, sleep: Callable[[float], None]
) -> Any:
    """urllib3's Retry for status retries at one node, sleeping through ``sleep``.

    Connection, read and redirect retries are 0: those move to the next node instead (see
    :class:`FailoverAdapter`). ``allowed_methods=None`` retries every verb: ekm's writes are
    check-and-set (a repeat cannot land twice) and Transit calls have no side effects.
    """
    from urllib3.util.retry import Retry

    class _Retry(Retry):
        """Retry whose sleeps go through an injectable function (tests do not wait)."""

        ekm_sleep: Callable[[float], None] = staticmethod(time.sleep)  # type: ignore[assignment]

        def new(self, **kw: Any) -> _Retry:
            fresh = super().new(**kw)
            fresh.ekm_sleep = self.ekm_sleep
            return fresh

        def sleep_for_retry(self, response: Any) -> bool:
            after = self.get_retry_after(response)
            if after:
                self.ekm_sleep(min(after, self.backoff_max))
                return True
            return False

        def _sleep_backoff(self) -> None:
            delay = self.get_backoff_time()
            if delay > 0:
                self.ekm_sleep(delay)

    retry = _Retry(
        total=max_retries,
        connect=0,
        read=0,
        redirect=0,
        other=0,
        status=max_retries,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,
        backoff_factor=backoff,
        backoff_max=max_backoff,
        backoff_jitter=backoff / 2,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )
    retry.ekm_sleep = sleep
    return retry


class FailoverAdapter(RawAdapter):  # type: ignore[misc]
    """hvac's RawAdapter over an ordered list of cluster nodes (never raises hvac errors)."""

    def __init__(
        self,
        settings: VaultSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
    ) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        session.verify = settings.verify_arg
        session.cert = settings.cert_arg
        session.trust_env = False  # no proxy or netrc from the environment sees the token
        mounted = HTTPAdapter(max_retries=build_retry(max_retries, backoff, max_backoff, sleep))
        session.mount("http://", mounted)
        session.mount("https://", mounted)
        super().__init__(
            base_uri=settings.endpoint,
            token="",
            cert=settings.cert_arg,
            verify=settings.verify_arg,
            timeout=settings.timeout,
            session=session,
            namespace=settings.namespace,
            allow_redirects=False,
            ignore_exceptions=True,
        )
        self.endpoints: list[str] = list(settings.endpoints)
        self.failover_timeout = settings.failover_timeout
        self._sleep = sleep
        self._backoff = backoff
        self._max_backoff = max_backoff
        self.index: str | None = None
        #: Set after a failover (and at start with several nodes): find the active node again.
        self.needs_leader = len(self.endpoints) > 1
        self.op = "request"
        self.clean: Callable[[str], str] = lambda text: text
        self._warned: set[tuple[str, str]] = set()

    @property
    def current(self) -> str:
        return str(self.base_uri)

    @current.setter
    def current(self, url: str) -> None:
        self.base_uri = url

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """Send one API call to the first node able to answer it; see the module docstring."""
        import requests

        kwargs.pop("raise_exception", None)  # this adapter never raises hvac errors
        wrap_ttl = kwargs.pop("wrap_ttl", None)
        if wrap_ttl:
            headers = {**(headers or {}), "X-Vault-Wrap-TTL": str(wrap_ttl)}
        path = "/" + url.lstrip("/")
        while "//" in path:
            path = path.replace("//", "/")
        options = {**self._kwargs, **kwargs}
        started = time.monotonic()
        slept = 0.0
        attempts = 0
        failures: dict[str, str] = {}
        sealed: set[str] = set()
        round_no = 0
        while True:
            order = [self.current] + [e for e in self.endpoints if e != self.current]
            candidates = [e for e in order if e not in sealed]
            if not candidates:
                break
            for node in candidates:
                target, hops = node, 0
                while True:
                    attempts += 1
                    try:
                        resp = self.session.request(
                            method=method,
                            url=target + path,
                            headers=self._headers(headers),
                            allow_redirects=False,
                            **options,
                        )
                    except requests.exceptions.SSLError:
                        raise BackendError(
                            f"TLS verification of Vault at {target} failed; set vault.ca_cert to "
                            "the CA that signed its certificate and check the host name (or "
                            "client certificate); nothing was sent"
                        ) from None
                    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
                        why = "is unreachable (connection refused or timed out)"
                        if target != node:
                            why = f"is unreachable (the leader {node} redirected to)"
                        self._note(failures, target, why)
                        break
                    except (requests.exceptions.RequestException, OSError) as exc:
                        raise BackendError(
                            f"Vault at {target}: {self.op} failed: {self.clean(type(exc).__name__)}"
                        ) from None
                    if resp.status_code in REDIRECT_STATUS:
                        location = resp.headers.get("Location", "")
                        nxt = _redirect_target(target, location)
                        resp.close()
                        if nxt is None:
                            self._note(failures, target, "redirected to an unusable location")
                            break
                        hops += 1
                        if hops > MAX_REDIRECTS:
                            self._note(failures, node, "answered with too many redirects")
                            break
                        target = nxt
                        continue
                    reason = _unavailable(resp)
                    if reason is not None:
                        self._note(failures, target, reason)
                        if "sealed" in reason:
                            sealed.add(target)
                        break
                    if attempts > 1 or _retried_by_urllib3(resp):
                        resp.ekm_retried = True
                        self.needs_leader = self.needs_leader or len(self.endpoints) > 1
                    else:
                        resp.ekm_retried = False
                    index = resp.headers.get("X-Vault-Index")
                    if index:
                        self.index = index
                    self.current = target if target in self.endpoints else node
                    return resp
            elapsed = max(time.monotonic() - started, slept)
            if elapsed >= self.failover_timeout or len(sealed) == len(self.endpoints):
                break
            round_no += 1
            delay = min(self._delay(round_no), self.failover_timeout - elapsed)
            slept += delay
            self._sleep(delay)
        raise self._gave_up(failures, attempts, max(time.monotonic() - started, slept))

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        headers["X-Vault-Request"] = "true"
        if self.token:
            headers["X-Vault-Token"] = self.token
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        headers["X-Vault-Inconsistent"] = "forward-active-node"
        if self.index:
            headers["X-Vault-Index"] = self.index
        return headers

    def _delay(self, round_no: int) -> float:
        delay = min(self._max_backoff, self._backoff * 2 ** (round_no - 1))
        return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not cryptography

    def _note(self, failures: dict[str, str], node: str, why: str) -> None:
        """Remember why ``node`` failed; with several nodes, warn once that it is skipped."""
        failures[node] = why
        if len(self.endpoints) > 1:
            self.needs_leader = True
            if (node, why) not in self._warned:
                self._warned.add((node, why))
                warnings.warn(
                    EkmWarning(f"Vault at {node} {why}; trying the next node"), stacklevel=2
                )

    def _gave_up(self, failures: dict[str, str], attempts: int, elapsed: float) -> BackendError:
        if len(self.endpoints) == 1:
            node = self.endpoints[0]
            why = failures.get(node) or next(iter(failures.values()), "did not answer")
            if "sealed" in why:
                return BackendError(
                    f"Vault at {node} is sealed; unseal it (bao/vault operator unseal); "
                    f"{self.op} was not sent"
                )
            more = "".join(f"; {n} {w}" for n, w in failures.items() if n != node)
            return BackendError(
                f"Vault at {node} {why}{more}; gave up on {self.op} after {attempts} "
                f"attempts in {elapsed:.1f} s"
            )
        named = "; ".join(f"{n} {w}" for n, w in failures.items())
        return BackendError(
            f"no Vault node could serve {self.op} ({named}); gave up after {attempts} attempts "
            f"in {elapsed:.1f} s (vault.failover_timeout = {self.failover_timeout:g})"
        )


def _unavailable(resp: Any) -> str | None:
    """Why this node cannot serve the request now (try another), or None if it answered."""
    status = resp.status_code
    if status not in FAILOVER_STATUS:
        return None
    try:
        body = resp.json() if resp.content else None
    except (ValueError, RecursionError):
        body = None
    text = _errors_text(body if isinstance(body, dict) else None).lower()
    if status == 503 and "sealed" in text:
        return "is sealed"
    if status == 412:
        return "has not yet applied our last write (HTTP 412)"
    if status == 429:
        return "is rate-limiting requests (HTTP 429)"
    if status == 503:
        return "is unavailable (HTTP 503: standby without a leader, or maintenance)"
    return f"answered HTTP {status} (server error)"


def _redirect_target(current: str, location: str) -> str | None:
    """The node (scheme://host:port) a redirect points at, or None if it may not be followed."""
    if not location:
        return None
    parts = urlsplit(urljoin(current + "/", location))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if urlsplit(current).scheme == "https" and parts.scheme != "https":
        return None  # never downgrade to plain http (the token would travel in clear)
    if parts.username or parts.password:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _retried_by_urllib3(resp: Any) -> bool:
    retries = getattr(getattr(resp, "raw", None), "retries", None)
    return bool(getattr(retries, "history", None))
