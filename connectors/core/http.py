"""The one HTTP session every connector call goes through.

- a timeout on every request (connect, read);
- retries with capped exponential backoff and jitter (tenacity) on 429, 5xx, timeouts,
  connection errors and each platform's retryable error codes; a Retry-After header (or
  a platform's "ban lasts N seconds") sets the wait instead;
- an expired token is refreshed once, under a lock, by the authenticator, and the call
  repeated (no refresh storm: concurrent callers share the new token);
- secrets (tokens, app secrets, cookies, signatures) never reach a log line: the
  `redact` filter masks every registered secret value and the usual secret parameters.

Platforms teach the client their error style through `classify(response)`, which says
whether a response is fine, retryable, a dead token, or a hard failure.
"""

from __future__ import annotations

import enum
import logging
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

log = logging.getLogger("connectors.http")


class Verdict(enum.Enum):
    OK = "ok"
    RETRY = "retry"  # rate limit, busy, transient server trouble
    TOKEN_EXPIRED = "token_expired"  # refresh once, then repeat
    UNAVAILABLE = "unavailable"  # switched off or forbidden: the scraper may take over
    FATAL = "fatal"  # a bug or bad request: stop


@dataclass
class Classified:
    verdict: Verdict
    reason: str = ""
    retry_after_s: float | None = None


class ConnectorError(Exception):
    """Base of connector errors; the message says what happened and what to do."""


class ApiUnavailable(ConnectorError):
    """The API is switched off, forbidden, or failed after every retry: fall back."""


class FatalApiError(ConnectorError):
    """The platform refused the request for a reason retrying cannot fix."""


class CredentialsExpired(ConnectorError):
    """A session key that only a person can renew has expired (Taobao, JD)."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


# -- secrets never in logs ------------------------------------------------------------
_SECRET_PARAMS = re.compile(
    r"(?i)((?:access_token|token|secret|corpsecret|app_secret|appsecret|session|sign|password|api_token|"
    r"authorization|cookie|csrf[_-]?token)[\"']?\s*[=:]\s*[\"']?)([^&\s\"',;}]+)"
)
_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` in every log record from now on."""
    if value and len(value) >= 8:  # shorter values are not secrets worth masking everywhere
        with _registered_lock:
            _registered.add(value)


def redact(text: str) -> str:
    with _registered_lock:
        values = sorted(_registered, key=len, reverse=True)
    for value in values:
        text = text.replace(value, "***")
    return _SECRET_PARAMS.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """Attach to handlers (the CLI and Airflow tasks do) to scrub every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())


# -- the client -----------------------------------------------------------------------
@dataclass
class RetryPolicy:
    attempts: int = 8
    max_total_s: float = 120.0
    base_s: float = 0.2
    cap_s: float = 10.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0


def _default_classify(response: requests.Response) -> Classified:
    code = response.status_code
    if code == 429:
        return Classified(Verdict.RETRY, "HTTP 429", _retry_after(response))
    if code >= 500:
        return Classified(Verdict.RETRY, f"HTTP {code}", _retry_after(response))
    if code == 401:
        return Classified(Verdict.TOKEN_EXPIRED, "HTTP 401")
    if code in (403, 404, 410):
        return Classified(Verdict.UNAVAILABLE, f"HTTP {code}")
    if code >= 400:
        return Classified(Verdict.FATAL, f"HTTP {code}: {response.text[:200]}")
    return Classified(Verdict.OK)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parsed_json(response: requests.Response):
    """The response body as JSON, parsed once (classifiers and callers share it)."""
    cached = getattr(response, "_csw_json", None)
    if cached is None:
        cached = orjson.loads(response.content)
        response._csw_json = cached
    return cached


class HttpClient:
    """`client.request(method, url, ...)` with retries, token refresh and redaction.

    `auth` is an authenticator from `connectors.core.auth` (or None); it prepares each
    request (adds a token, signs) and refreshes its token when told to.
    """

    def __init__(
        self,
        platform: str,
        auth=None,
        classify: Callable[[requests.Response], Classified] | None = None,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.platform = platform
        self.auth = auth
        self.classify = classify or _default_classify
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "cs-warehouse-connector/0.1")
        self._sleep = sleep
        self.stats = {"requests": 0, "retries": 0, "token_refreshes": 0}
        if auth is not None:
            auth.bind(self)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after_s is not None:
            return min(float(exc.retry_after_s), self.policy.cap_s * 3)
        backoff = min(self.policy.cap_s, self.policy.base_s * 2 ** (state.attempt_number - 1))
        return backoff / 2 + random.uniform(0, backoff / 2)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats["retries"] += 1
        exc = state.outcome.exception()
        log.warning(
            "%s: retry %d after %s (waiting %.1fs)",
            self.platform,
            state.attempt_number,
            redact(str(exc)),
            state.next_action.sleep if state.next_action else 0,
        )

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        """Send, retrying what can be retried. Raises ApiUnavailable / FatalApiError."""
        retrying = Retrying(
            retry=retry_if_exception_type((_Retryable, requests.Timeout, requests.ConnectionError)),
            stop=stop_after_attempt(self.policy.attempts) | stop_after_delay(self.policy.max_total_s),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
            **({"sleep": self._sleep} if self._sleep else {}),
        )
        refreshed = False
        try:
            for attempt in retrying:
                with attempt:
                    response = self._send(method, url, **kwargs)
                    verdict = self.classify(response)
                    if verdict.verdict is Verdict.TOKEN_EXPIRED and self.auth is not None and not refreshed:
                        # once per call: a second expiry right after a refresh is a real error
                        refreshed = True
                        self.stats["token_refreshes"] += 1
                        self.auth.refresh(stale=self.auth.current_token())
                        raise _Retryable(f"token expired ({verdict.reason}); refreshed", 0)
                    if verdict.verdict is Verdict.RETRY:
                        raise _Retryable(verdict.reason, verdict.retry_after_s)
                    if verdict.verdict is Verdict.UNAVAILABLE:
                        raise ApiUnavailable(f"{self.platform}: API unavailable ({verdict.reason})")
                    if verdict.verdict in (Verdict.FATAL, Verdict.TOKEN_EXPIRED):
                        raise FatalApiError(f"{self.platform}: request refused: {redact(verdict.reason)}")
                    return response
        except (_Retryable, requests.Timeout, requests.ConnectionError) as exc:
            raise ApiUnavailable(
                f"{self.platform}: still failing after {self.policy.attempts} attempts "
                f"({redact(str(exc))}); the API looks down - the scraper fallback takes over where "
                "the platform has one, otherwise re-run later"
            ) from exc
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", (self.policy.connect_timeout_s, self.policy.read_timeout_s))
        if self.auth is not None:
            method, url, kwargs = self.auth.prepare(method, url, kwargs)
        self.stats["requests"] += 1
        log.debug("%s %s", method, redact(url))
        return self.session.request(method, url, **kwargs)

    def json(self, method: str, url: str, **kwargs) -> dict:
        response = self.request(method, url, **kwargs)
        try:
            return parsed_json(response)
        except ValueError as exc:
            raise FatalApiError(
                f"{self.platform}: expected JSON from {redact(url)}, got {response.headers.get('content-type')}"
            ) from exc
