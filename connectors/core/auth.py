"""Authenticators: each prepares a request (adds a token, signs it) and, for token
schemes, refreshes the token once when the platform says it expired.

- `AccessTokenAuth`: a token endpoint with expiry (WeCom `gettoken`, WeChat `token`,
  Meiqia, Sobot `get_token`); the token goes into a query parameter or a header.
- `BasicAuth`: Zendesk `{email}/token:{api_token}`.
- `TopSigner`: Taobao TOP gateway, md5(secret + sorted k+v + secret), upper hex.
- `JosSigner`: JD JOS gateway, same scheme over its system params + `360buy_param_json`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from connectors.core.http import register_secret

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


class Authenticator:
    client = None

    def bind(self, client) -> None:
        self.client = client

    def prepare(self, method: str, url: str, kwargs: dict) -> tuple[str, str, dict]:
        return method, url, kwargs

    def current_token(self) -> str | None:
        return None

    def refresh(self, stale: str | None = None) -> None:  # noqa: B027 - optional hook
        """Token schemes override; signing schemes have nothing to refresh."""


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class AccessTokenAuth(Authenticator):
    """A cached access token, fetched by `fetch(session) -> (token, ttl_s)`.

    Refreshed ahead of expiry and when the platform says it died; concurrent callers
    share one refresh (the lock, and `stale` tells whether someone else already did it).
    """

    def __init__(
        self,
        fetch: Callable[[requests.Session], tuple[str, float]],
        query_param: str | None = "access_token",
        header: str | None = None,
        header_format: str = "{token}",
        margin_s: float = 300.0,
    ):
        self._fetch = fetch
        self.query_param = query_param
        self.header = header
        self.header_format = header_format
        self.margin_s = margin_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def current_token(self) -> str | None:
        return self._token

    def _ensure(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() > self._expires_at - self.margin_s:
                self._load()
            return self._token

    def _load(self) -> None:
        session = self.client.session if self.client else requests.Session()
        token, ttl = self._fetch(session)
        register_secret(token)
        self._token = token
        self._expires_at = time.monotonic() + float(ttl)

    def refresh(self, stale: str | None = None) -> None:
        with self._lock:
            if stale is not None and self._token != stale:
                return  # another caller already refreshed
            self._load()

    def prepare(self, method, url, kwargs):
        token = self._ensure()
        if self.query_param:
            url = _with_query(url, **{self.query_param: token})
        if self.header:
            headers = dict(kwargs.get("headers") or {})
            headers[self.header] = self.header_format.format(token=token)
            kwargs = {**kwargs, "headers": headers}
        return method, url, kwargs


class BasicAuth(Authenticator):
    def __init__(self, username: str, password: str):
        register_secret(password)
        self._auth = (username, password)

    def prepare(self, method, url, kwargs):
        return method, url, {**kwargs, "auth": self._auth}


def top_sign(params: dict[str, str], secret: str, method: str = "md5") -> str:
    """Taobao TOP / JD JOS signature: sorted k+v concatenated, secret at both ends (md5),
    or HMAC-MD5 keyed by the secret; upper-case hex. Empty values are left out, as the
    gateways (and their SDKs) do."""
    body = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v not in (None, ""))
    if method == "hmac":
        return hmac.new(secret.encode(), body.encode(), hashlib.md5).hexdigest().upper()
    return hashlib.md5(f"{secret}{body}{secret}".encode()).hexdigest().upper()


def gmt8_timestamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


class TopSigner(Authenticator):
    """Signs TOP gateway calls. Business params come in `kwargs['data']` (a dict)."""

    def __init__(
        self, app_key: str, app_secret: str, session_key: str, clock: Callable[[], dt.datetime] | None = None
    ):
        register_secret(app_secret)
        register_secret(session_key)
        self.app_key, self._secret, self._session = app_key, app_secret, session_key
        self.clock = clock

    def prepare(self, method, url, kwargs):
        params = {k: str(v) for k, v in (kwargs.get("data") or {}).items()}
        params.update(
            app_key=self.app_key,
            session=self._session,
            timestamp=gmt8_timestamp(self.clock() if self.clock else None),
            v="2.0",
            format="json",
            sign_method="md5",
        )
        params["sign"] = top_sign(params, self._secret)
        return "POST", url, {**kwargs, "data": params}


class JosSigner(Authenticator):
    """Signs JD JOS calls: system params + `360buy_param_json` business params."""

    def __init__(
        self, app_key: str, app_secret: str, access_token: str, clock: Callable[[], dt.datetime] | None = None
    ):
        register_secret(app_secret)
        register_secret(access_token)
        self.app_key, self._secret, self._token = app_key, app_secret, access_token
        self.clock = clock

    def prepare(self, method, url, kwargs):
        params = {k: str(v) for k, v in (kwargs.get("data") or {}).items()}
        params.update(
            app_key=self.app_key,
            access_token=self._token,
            timestamp=gmt8_timestamp(self.clock() if self.clock else None),
            v="2.0",
            sign_method="md5",
        )
        params["sign"] = top_sign(params, self._secret)
        return "POST", url, {**kwargs, "data": params}
