"""One HTTP server on 127.0.0.1 for every simulated platform, each under its own prefix:

    /wecom/cgi-bin/...        WeCom 微信客服           /wechat_oa/cgi-bin/...  WeChat OA
    /taobao/router/rest       Taobao TOP gateway       /jd/routerjson          JD JOS gateway
    /meiqia/...               Meiqia                   /sobot/...              Sobot
    /zendesk/api/v2/...       Zendesk                  /console/<platform>/... admin consoles
    /crm/api/v1/...           the company's CRM (customers, identities, orders)
    /_sandbox/...             clock, faults, health (for tests and the demo)

Platform modules live in `sandbox/server/platforms/<platform>.py`, each exposing
`router(state) -> fastapi.APIRouter`; the console lives in `sandbox/server/console.py`.
"""

from __future__ import annotations

import importlib
import socket
import threading
import time
from dataclasses import asdict

import uvicorn
from fastapi import Body, FastAPI, HTTPException

from sandbox.server.faults import FaultConfig
from sandbox.server.state import SandboxState

API_PLATFORMS = ("wecom", "wechat_oa", "taobao", "jd", "meiqia", "sobot", "zendesk")
CONSOLE_ONLY = ("douyin", "pinduoduo")
INTERNAL = ("crm",)  # the company's own CRM / order system, always served


def build_app(state: SandboxState) -> FastAPI:
    app = FastAPI(
        title="cs-warehouse sandbox platforms",
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
    )
    app.state.sandbox = state
    served = []
    for platform in API_PLATFORMS + INTERNAL:
        if platform not in state.data.config["channels"] and platform not in INTERNAL:
            continue
        try:
            module = importlib.import_module(f"sandbox.server.platforms.{platform}")
        except ModuleNotFoundError:
            continue
        app.include_router(module.router(state), prefix=f"/{platform}")
        served.append(platform)
    try:
        console = importlib.import_module("sandbox.server.console")
        app.include_router(console.router(state), prefix="/console")
    except ModuleNotFoundError:
        pass
    app.state.served = served

    @app.get("/_sandbox/health")
    def health() -> dict:
        return {"ok": True, "as_of": state.now().isoformat(), "platforms": served}

    @app.get("/_sandbox/clock")
    def get_clock() -> dict:
        return {"as_of": state.now().isoformat(), "speed": state.clock.speed}

    @app.post("/_sandbox/clock")
    def set_clock(body: dict = Body(default_factory=dict)) -> dict:
        as_of = state.clock.set(body.get("as_of"), body.get("speed"), float(body.get("advance_s", 0)))
        return {"as_of": as_of.isoformat(), "speed": state.clock.speed}

    @app.get("/_sandbox/faults")
    def get_faults() -> dict:
        return state.faults.snapshot()

    @app.post("/_sandbox/faults/{platform}")
    def set_faults(platform: str, body: dict = Body(default_factory=dict)) -> dict:
        try:
            return asdict(state.faults.set(platform, **body))
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, f"bad fault config: {exc}") from exc

    @app.delete("/_sandbox/faults")
    def clear_faults(platform: str | None = None) -> dict:
        state.faults.clear(platform)
        return {"cleared": platform or "all"}

    @app.get("/_sandbox/live/{platform}")
    def live(platform: str) -> dict:
        out = state.live_state(platform)
        return {**out, "as_of": out["as_of"].isoformat()}

    _ = FaultConfig  # documented body shape of POST /_sandbox/faults/{platform}
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """A server started in a background thread (tests, the demo); `.url`, `.stop()`."""

    def __init__(self, state: SandboxState, port: int | None = None, host: str = "127.0.0.1"):
        self.state = state
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            build_app(state), host=host, port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sandbox-server", daemon=True)

    def start(self, timeout_s: float = 20.0) -> RunningServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
