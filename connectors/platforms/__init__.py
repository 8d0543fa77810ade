"""One module per platform API; each defines a `Connector` (a `PlatformConnector`).

Adding a platform: a module here, a sandbox server module, staging models and tests;
then one line in `MODULES`.
"""

from __future__ import annotations

import importlib

from connectors.core.streams import Stream

MODULES = {
    "wecom": "connectors.platforms.wecom",
    "taobao": "connectors.platforms.taobao",
    "zendesk": "connectors.platforms.zendesk",
    "wechat_oa": "connectors.platforms.wechat_oa",
    "jd": "connectors.platforms.jd",
    "meiqia": "connectors.platforms.meiqia",
    "sobot": "connectors.platforms.sobot",
    "douyin": "connectors.platforms.douyin",
    "pinduoduo": "connectors.platforms.pinduoduo",
    "crm": "connectors.platforms.crm",
}


def available() -> list[str]:
    """Platforms whose connector module exists in this build."""
    out = []
    for name, module in MODULES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        out.append(name)
    return out


def connector_class(platform: str):
    if platform not in MODULES:
        raise KeyError(f"unknown platform {platform!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(MODULES[platform]).Connector


def all_streams() -> dict[str, Stream]:
    """Every declared stream by raw table name (`<platform>__<stream>`)."""
    out = {}
    for name in available():
        for stream in connector_class(name).streams.values():
            out[stream.table] = stream
    return out
