"""`csw sandbox serve` for the compose file's optional `sandbox` service.

`csw sandbox serve` listens on 127.0.0.1, right on a laptop; in a container the Airflow
services reach it over the compose network, so this shim makes it listen on
`CSW_SANDBOX_HOST` (default 0.0.0.0) and passes every argument on:

    python docker/sandbox_serve.py --port 8765 --speed 1
"""

from __future__ import annotations

import os
import sys

import uvicorn

_run = uvicorn.run


def _run_on_host(app, *args, **kwargs):
    kwargs["host"] = os.environ.get("CSW_SANDBOX_HOST", "0.0.0.0")
    return _run(app, *args, **kwargs)


def main(argv: list[str]) -> None:
    uvicorn.run = _run_on_host
    from sandbox.cli import app

    app(["serve", *argv], prog_name="csw sandbox")


if __name__ == "__main__":
    main(sys.argv[1:])
