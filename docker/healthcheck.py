"""Container health checks of docker/compose.yaml: `python healthcheck.py <component>`.

Exit 0 when the component is healthy, 1 with a one-line reason otherwise. Standard library
only (the image has no curl); ports come from the same settings Airflow reads.

    api-server     GET /api/v2/monitor/health answers and the metadata DB is healthy
    scheduler      the scheduler's own health server (AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK)
    dag-processor  `airflow jobs check --job-type DagProcessorJob --local`
    triggerer      `airflow jobs check --job-type TriggererJob --local`
    celery-worker  `celery inspect ping` of this host's worker
    sandbox        GET /_sandbox/health of the simulated platforms
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

TIMEOUT_S = 10


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with opener.open(url, timeout=TIMEOUT_S) as resp:
        return resp.status, resp.read()


def _local_url(port_var: str, default_port: str, path: str) -> str:
    return f"http://127.0.0.1:{os.environ.get(port_var, default_port)}{path}"


def check_api_server() -> str | None:
    status, body = _get(_local_url("AIRFLOW__API__PORT", "8080", "/api/v2/monitor/health"))
    db = (json.loads(body).get("metadatabase") or {}).get("status")
    return None if status == 200 and db == "healthy" else f"api-server answers {status}, metadatabase {db}"


def check_scheduler() -> str | None:
    url = _local_url("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", "8974", "/health")
    status, _ = _get(url)
    return None if status == 200 else f"scheduler health server answers {status}"


def _jobs_check(job_type: str) -> str | None:
    proc = subprocess.run(
        ["airflow", "jobs", "check", "--job-type", job_type, "--local"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return None if proc.returncode == 0 else f"{job_type}: {(proc.stdout + proc.stderr).strip()[-300:]}"


def check_celery_worker() -> str | None:
    proc = subprocess.run(
        [
            "celery",
            "--app",
            "airflow.providers.celery.executors.celery_executor.app",
            "inspect",
            "ping",
            "-d",
            f"celery@{socket.gethostname()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return None if proc.returncode == 0 else f"celery worker: {(proc.stdout + proc.stderr).strip()[-300:]}"


def check_sandbox() -> str | None:
    status, _ = _get(_local_url("CSW_SANDBOX_PORT", "8765", "/_sandbox/health"))
    return None if status == 200 else f"sandbox answers {status}"


CHECKS = {
    "api-server": check_api_server,
    "scheduler": check_scheduler,
    "dag-processor": lambda: _jobs_check("DagProcessorJob"),
    "triggerer": lambda: _jobs_check("TriggererJob"),
    "celery-worker": check_celery_worker,
    "sandbox": check_sandbox,
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: healthcheck.py {{{'|'.join(CHECKS)}}}", file=sys.stderr)
        return 2
    try:
        problem = CHECKS[argv[0]]()
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        problem = f"{argv[0]}: {type(exc).__name__}: {exc}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    print(f"{argv[0]}: healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
