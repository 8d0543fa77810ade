#!/usr/bin/env bash
# Entry point of the cs-warehouse image (docker/Dockerfile): one component per container.
#
#   init            wait for the metadata DB, migrate it, create the one-slot writer pool
#                   and the data directories (the compose service airflow-init, run once)
#   api-server      Airflow UI, REST and execution API (writes the admin password file first)
#   scheduler | dag-processor | triggerer
#   celery-worker   `airflow celery worker` on CSW_WORKER_QUEUES with CSW_WORKER_CONCURRENCY
#   sandbox         the simulated platforms (optional service), on all interfaces
#   csw ...         the project's command line;  anything else is run as given
#
# tests/test_postgres_path.py runs this script (init and the Airflow components) against
# a real PostgreSQL with the settings of docker/compose.yaml.
set -euo pipefail

: "${AIRFLOW_HOME:=/opt/airflow}"
: "${CSW_DATA_DIR:=/data}"
CSW_WRITER_POOL="${CSW_WRITER_POOL:-duckdb_writer}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export AIRFLOW_HOME CSW_DATA_DIR

log() { echo "[entrypoint] $*" >&2; }

wait_for_db() {
    # retries only while the server is unreachable; any other error (a wrong driver, a
    # wrong password) fails at once. Never prints the URL: it holds the password.
    python - <<'PY'
import os
import sys
import time

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

tries = int(os.environ.get("CSW_DB_WAIT_TRIES", "60"))
engine = create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
for attempt in range(1, tries + 1):
    try:
        with engine.connect() as con:
            con.execute(text("select 1"))
        sys.exit(0)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(f"[entrypoint] metadata database not reachable yet ({attempt}/{tries}): {reason}", file=sys.stderr)
        time.sleep(2)
sys.exit("[entrypoint] metadata database unreachable: check AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and the postgres service")
PY
}

write_admin_password() {
    # SimpleAuthManager reads its users' passwords from this JSON file.
    local file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json}"
    if [[ -z "${AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
        log "AIRFLOW_ADMIN_PASSWORD is not set: set it in docker/.env (see docker/.env.example)"
        exit 64
    fi
    mkdir -p "$(dirname "$file")"
    (umask 077 && python -c 'import json, os, sys; json.dump({os.environ.get("AIRFLOW_ADMIN_USER", "admin"): os.environ["AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))' "$file")
}

init() {
    mkdir -p "$CSW_DATA_DIR"/{landing,warehouse,serving,quality,pipeline} "$AIRFLOW_HOME/logs"
    if [[ "$(id -u)" == 0 && -n "${AIRFLOW_UID:-}" ]]; then
        # the services run as AIRFLOW_UID (group 0): hand them the directories (not recursive:
        # existing data keeps its owner)
        chown "$AIRFLOW_UID:0" "$CSW_DATA_DIR" "$CSW_DATA_DIR"/{landing,warehouse,serving,quality,pipeline} "$AIRFLOW_HOME/logs"
    fi
    wait_for_db
    log "migrating the metadata database"
    airflow db migrate
    log "pool $CSW_WRITER_POOL: one slot (one DuckDB writer at a time)"
    airflow pools set "$CSW_WRITER_POOL" 1 "The DuckDB warehouse: one writer (or reader) at a time." >/dev/null
    log "ready"
}

component="${1:-api-server}"
[[ $# -gt 0 ]] && shift
case "$component" in
    init)
        init
        ;;
    api-server)
        write_admin_password
        exec airflow api-server --host "${AIRFLOW__API__HOST:-0.0.0.0}" --port "${AIRFLOW__API__PORT:-8080}" "$@"
        ;;
    scheduler | dag-processor | triggerer)
        exec airflow "$component" "$@"
        ;;
    celery-worker)
        exec airflow celery worker \
            --queues "${CSW_WORKER_QUEUES:-default}" \
            --concurrency "${CSW_WORKER_CONCURRENCY:-8}" "$@"
        ;;
    sandbox)
        exec python "$HERE/sandbox_serve.py" "$@"
        ;;
    csw)
        exec csw "$@"
        ;;
    *)
        exec "$component" "$@"
        ;;
esac
