"""Connector configuration: accounts and credentials per platform.

Read from a YAML file (`CSW_CONNECTORS_CONFIG`, default `<data>/connectors.yaml`), where
any value may reference an environment variable as `${NAME}`; or from an Airflow
connection given as the environment variable `AIRFLOW_CONN_CSW_<PLATFORM>` in Airflow's
JSON form (`{"conn_type": "http", "host": ..., "login": ..., "password": ..., "extra": {...}}`),
which wins over the file. Secrets therefore live in the environment or Airflow, never in
code or the repository. A missing key is a `ConfigError` naming the key and where to set it.

    platforms:
      wecom:
        base_url: https://qyapi.weixin.qq.com
        corpid: ${WECOM_CORPID}
        corpsecret: ${WECOM_KF_SECRET}
        open_kfid: wkXXXXXXXX
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from connectors.core.http import register_secret
from csw.settings import data_dir

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_KEYS = (
    "secret",
    "corpsecret",
    "app_secret",
    "session",
    "access_token",
    "api_token",
    "password",
    "app_key_secret",
)


class ConfigError(Exception):
    """The connector configuration is missing something or is malformed."""


def config_path() -> Path:
    return Path(os.environ.get("CSW_CONNECTORS_CONFIG", data_dir() / "connectors.yaml"))


def _expand(value, where: str):
    if isinstance(value, str):

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{where} refers to ${{{name}}}, but the environment variable {name} is not set"
                )
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


@dataclass
class PlatformConfig:
    platform: str
    values: dict = field(default_factory=dict)
    source: str = "connectors.yaml"

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    def require(self, key: str) -> str:
        value = self.values.get(key)
        if value in (None, ""):
            raise ConfigError(
                f"{self.source}: platforms.{self.platform}.{key} is missing. Set it in the YAML file "
                f"(a value or ${{ENV_VAR}}) or in the Airflow connection csw_{self.platform}."
            )
        return str(value)

    @property
    def base_url(self) -> str:
        return self.require("base_url").rstrip("/")


def _from_airflow_env(platform: str) -> dict | None:
    raw = os.environ.get(f"AIRFLOW_CONN_CSW_{platform.upper()}")
    if not raw:
        return None
    try:
        conn = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(
            f"AIRFLOW_CONN_CSW_{platform.upper()} is not JSON; use Airflow's JSON connection form"
        ) from exc
    values = dict(conn.get("extra") or {})
    host = conn.get("host")
    if host:
        scheme = conn.get("schema") or conn.get("conn_type") or "https"
        scheme = scheme if scheme in ("http", "https") else "https"
        port = f":{conn['port']}" if conn.get("port") else ""
        values["base_url"] = host if "://" in host else f"{scheme}://{host}{port}"
    if conn.get("login"):
        values.setdefault("login", conn["login"])
    if conn.get("password"):
        values.setdefault("password", conn["password"])
    return values


def load_config(
    path: Path | None = None, overrides: Mapping[str, dict] | None = None
) -> dict[str, PlatformConfig]:
    """All platforms' configs. `overrides` (e.g. the sandbox's) come first, then the file,
    then Airflow connection environment variables."""
    path = path or config_path()
    platforms: dict[str, dict] = {k: dict(v) for k, v in (overrides or {}).items()}
    source = {k: "sandbox" for k in platforms}
    if path.exists():
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(doc.get("platforms", {}), dict):
            raise ConfigError(f"{path}: `platforms` must be a mapping of platform name to settings")
        for name, values in (doc.get("platforms") or {}).items():
            platforms.setdefault(name, {}).update(_expand(values or {}, f"{path.name}: platforms.{name}"))
            source[name] = str(path)
    for name in list(platforms) + [
        p.lower()[len("AIRFLOW_CONN_CSW_") :] for p in os.environ if p.startswith("AIRFLOW_CONN_CSW_")
    ]:
        extra = _from_airflow_env(name)
        if extra:
            platforms.setdefault(name, {}).update(extra)
            source[name] = f"AIRFLOW_CONN_CSW_{name.upper()}"
    out = {}
    for name, values in platforms.items():
        for key, value in values.items():
            if any(s in key for s in SECRET_KEYS) and isinstance(value, str):
                register_secret(value)
        out[name] = PlatformConfig(name, values, source.get(name, str(path)))
    return out


def sandbox_overrides(base_url: str) -> dict[str, dict]:
    """Configs pointing every platform at the sandbox, with its test credentials."""
    from sandbox.server.state import CONSOLE_CREDENTIALS, DEFAULT_CREDENTIALS

    out = {}
    for platform, creds in DEFAULT_CREDENTIALS.items():
        out[platform] = {
            "base_url": f"{base_url.rstrip('/')}/{platform}",
            **creds,
            "console_url": f"{base_url.rstrip('/')}/console/{platform}",
            "console_username": CONSOLE_CREDENTIALS["username"],
            "console_password": CONSOLE_CREDENTIALS["password"],
        }
    # the sandbox serves Zendesk comments in bulk (a sandbox extension, faster than one
    # request per ticket); real Zendesk uses the default per-ticket mode
    out["zendesk"]["comments_mode"] = "bulk"
    return out
