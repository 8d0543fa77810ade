"""docker/ checked without a Docker engine: the compose file parses and is well formed, every
file and environment variable it refers to exists, the image's Python and Airflow match
uv.lock, the entrypoint handles every command the services run, and every task that opens
the DuckDB warehouse is pinned to the one queue a single worker consumes.

The same compose settings run for real against PostgreSQL in tests/test_postgres_path.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
ENTRYPOINT = DOCKER / "entrypoint.sh"
IMAGE_ROOT = "/opt/csw"  # where the Dockerfile puts the repository

AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
CELERY_SERVICES = ("redis", "airflow-worker", "airflow-worker-duckdb")
LONG_RUNNING = ("postgres", *AIRFLOW_SERVICES, *CELERY_SERVICES, "sandbox")
# variables compose itself reads from .env, or that reach the containers through env_file
PASSTHROUGH = {"COMPOSE_PROFILES"}

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# -- helpers ------------------------------------------------------------------------------------
def read_env_file(path: Path) -> dict[str, str]:
    """A dotenv file as compose reads it (KEY=value, optional quotes, # comments)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alt}, $$."""

    def sub(m: re.Match) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        value = env.get(name)
        if op is None:
            return value or ""
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?"):
            if not value if op == ":?" else value is None:
                raise KeyError(f"compose would stop: {name}: {arg}")
            return value
        return arg if value else ""  # :+ / +

    return _VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(k)
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)


def resolve(node, env):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, env) for v in node]
    return node


def filled_env() -> dict[str, str]:
    """docker/.env as a user fills it in from the example (secrets given a value)."""
    env = read_env_file(ENV_EXAMPLE)
    for key, value in env.items():
        if not value and key in required_vars():
            env[key] = f"test-{key.lower()}"
    return env


def required_vars() -> set[str]:
    return {
        m["name"] for s in walk_strings(raw_compose()) for m in _VAR.finditer(s) if m["op"] in (":?", "?")
    }


def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose() -> dict:
    """The compose file with docker/.env filled in from the example."""
    return resolve(raw_compose(), filled_env())


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def locked(name: str) -> dict:
    for pkg in lock()["package"]:
        if pkg["name"] == name:
            return pkg
    raise AssertionError(f"{name} is not in uv.lock")


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+([A-Z_]+)=(\S*)", DOCKERFILE.read_text(), flags=re.M))


def in_repo(image_path: str) -> Path:
    assert image_path.startswith(IMAGE_ROOT + "/"), image_path
    return ROOT / image_path[len(IMAGE_ROOT) + 1 :]


# -- the compose file ---------------------------------------------------------------------------
def test_compose_parses_and_is_well_formed():
    raw = raw_compose()
    assert set(raw) - {"name", "services", "volumes", "networks", "secrets", "configs"} <= {
        k for k in raw if k.startswith("x-")
    }, "unknown top-level keys"
    doc = compose()  # raises if a required variable has no value in the filled-in example
    services = doc["services"]
    named_volumes = set(doc.get("volumes") or {})
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        assert all(isinstance(p, str) for p in svc.get("profiles", [])), name
        deps = svc.get("depends_on") or {}
        for dep, spec in deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps):
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec.get("condition", "service_started") in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ), (name, dep)
            if set(services[dep].get("profiles", [])) - set(svc.get("profiles", [])):
                # a dependency that may be switched off must not be required
                assert spec.get("required") is False, f"{name} requires {dep} of another profile"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy, which has no check"
                )
        for vol in svc.get("volumes", []):
            source = vol["source"] if isinstance(vol, dict) else vol.split(":")[0]
            is_path = source.startswith((".", "/", "~"))
            assert is_path or source in named_volumes, f"{name}: volume {source} is not declared"
        hc = svc.get("healthcheck")
        if hc:
            assert hc["test"][0] in ("CMD", "CMD-SHELL"), name
            for key in ("interval", "timeout", "start_period"):
                assert re.fullmatch(r"\d+(ms|s|m|h)", str(hc.get(key, "1s"))), (name, key)
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no health check"
    for text in walk_strings(raw):
        leftover = _VAR.sub("", text.replace("$$", ""))
        assert "$" not in leftover, f"an interpolation compose would not understand: {text!r}"


def test_services_and_profiles():
    services = compose()["services"]
    always = {"postgres", "airflow-init", *AIRFLOW_SERVICES}
    for name in always:
        assert name in services and not services[name].get("profiles"), f"{name} must run by default"
    for name in CELERY_SERVICES:
        assert services[name].get("profiles") == ["celery"], name
    assert services["sandbox"].get("profiles") == ["sandbox"]
    commands = {name: (svc.get("command") or [None])[0] for name, svc in services.items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-init"] == "init"
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        env = service_env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", "LocalExecutor is the default"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    # with the celery profile on, the same settings switch every component to Celery
    celery = resolve(raw_compose(), {**filled_env(), "CSW_EXECUTOR": "CeleryExecutor", "REDIS_PASSWORD": "x"})
    for name in (*AIRFLOW_SERVICES, "airflow-worker", "airflow-worker-duckdb"):
        env = service_env(celery["services"][name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:x@redis:6379/0", name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://"), name


def test_data_volume_and_secrets():
    doc = compose()
    services = doc["services"]
    data_mounts = {}
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            if isinstance(vol, dict) and vol["target"] == "/data":
                data_mounts[name] = vol
    # tasks run in the scheduler (LocalExecutor) or the workers (Celery): they hold data/
    assert {"airflow-scheduler", "airflow-worker", "airflow-worker-duckdb", "airflow-init"} <= set(
        data_mounts
    )
    assert "airflow-apiserver" not in data_mounts, "the UI has no business with the warehouse file"
    for name, vol in data_mounts.items():
        source = (DOCKER / vol["source"]).resolve()
        assert source == ROOT / "data", f"{name}: data/ is mounted from {source}"
        assert env_value(name, "CSW_DATA_DIR") == "/data", name
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert "/data/" in gitignore or "data/" in gitignore, "data/ must be git-ignored"
    assert ".env" in gitignore, "docker/.env holds the secrets: it must be git-ignored"
    # secrets come from docker/.env, never from the compose file or the image
    secret_words = ("PASSWORD", "SECRET", "FERNET", "SALT")
    for name, svc in raw_compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if any(w in key for w in secret_words) and value and not key.endswith("_FILE"):
                assert str(value).startswith("${"), f"{name}: {key} is hard-coded"
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for pattern in (".git", ".venv", "data", "**/.env"):
        assert pattern in ignore, f"{pattern} would enter the image"


def env_value(service: str, key: str) -> str:
    return service_env(compose()["services"][service])[key]


def test_every_variable_is_documented_in_the_env_example():
    example = read_env_file(ENV_EXAMPLE)
    referenced = {m["name"] for s in walk_strings(raw_compose()) for m in _VAR.finditer(s)}
    missing = sorted(referenced - set(example))
    assert not missing, f"compose.yaml uses {missing}, which docker/.env.example does not document"
    unused = sorted(set(example) - referenced - PASSTHROUGH)
    assert not unused, f"docker/.env.example sets {unused}, which compose.yaml never reads"
    for name in required_vars():
        assert example[name] == "", f"{name} is a secret: the example must leave it empty"
    assert "POSTGRES_PASSWORD" in required_vars() and "CSW_HASH_SALT" in required_vars()


def test_project_variables_exist_in_the_code():
    """Every CSW_* setting the compose file passes is read somewhere (no typo goes unnoticed)."""
    code = "\n".join(
        p.read_text(errors="replace")
        for d in (
            "csw",
            "connectors",
            "sandbox",
            "forecasting",
            "expectations",
            "dags",
            "docker",
            "dbt_project",
        )
        for p in (ROOT / d).rglob("*")
        if p.suffix in (".py", ".sh", ".sql", ".yml") and "target" not in p.parts
    )
    keys = set()
    for svc in compose()["services"].values():
        keys |= {k for k in service_env(svc) if k.startswith("CSW_")}
    unread = sorted(k for k in keys if k not in code)
    assert not unread, f"compose sets {unread}, which no code reads"


def test_referenced_files_exist():
    doc = compose()
    for name, svc in doc["services"].items():
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context == ROOT, f"{name}: the image is built from the repository root"
            assert (context / build["dockerfile"]).is_file(), name
        for env_file in svc.get("env_file", []):
            path = env_file["path"] if isinstance(env_file, dict) else env_file
            if Path(path).name == ".env":
                assert ENV_EXAMPLE.is_file(), "docker/.env is made from docker/.env.example"
            else:
                assert (DOCKER / path).is_file(), f"{name}: env file {path} is missing"
        for part in (svc.get("healthcheck") or {}).get("test", [])[1:]:
            for path in re.findall(rf"{IMAGE_ROOT}/\S+", part):
                assert in_repo(path).is_file(), f"{name}: health check runs {path}, which does not exist"
    # the Dockerfile's COPY sources, ENTRYPOINT and the files the image needs
    text = DOCKERFILE.read_text()
    for line in re.findall(r"^COPY\s+(.+)$", text, flags=re.M):
        words = line.split()
        if any(w.startswith("--from=") for w in words):
            continue  # from another build stage
        for item in [w for w in words if not w.startswith("--")][:-1]:
            if item != ".":
                assert (ROOT / item).exists(), f"Dockerfile copies {item}, which does not exist"
    entry = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])", text, flags=re.M)[1])
    assert in_repo(entry[0]) == ENTRYPOINT
    assert os.access(ENTRYPOINT, os.X_OK) or "chmod 0755 /opt/csw/docker/entrypoint.sh" in text
    for f in ("pyproject.toml", "uv.lock", "README.md", "docker/config/airflow_local_settings.py"):
        assert (ROOT / f).is_file(), f


def test_entrypoint_handles_every_command():
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the entrypoint"
    subprocess.run([bash, "-n", str(ENTRYPOINT)], check=True)
    handled = set()
    for pattern in re.findall(r"^\s{4}([a-z|\s-]+)\)\s*$", ENTRYPOINT.read_text(), flags=re.M):
        handled |= {p.strip() for p in pattern.split("|")}
    for name, svc in compose()["services"].items():
        command = svc.get("command")
        if command and "image" in svc and svc["image"].startswith("cs-warehouse:"):
            assert command[0] in handled, f"{name}: the entrypoint does not know {command[0]!r}"
    # the Airflow sub-commands the entrypoint execs exist in the locked Airflow
    text = ENTRYPOINT.read_text()
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        timeout=120,
    ).stdout
    for sub in ("api-server", "scheduler", "dag-processor", "triggerer", "db", "pools"):
        assert re.search(rf"^\s+{sub}\s", out, flags=re.M), f"airflow has no {sub} command"
    assert "airflow db migrate" in text and "airflow pools set" in text
    assert "airflow celery worker" in text
    # the sandbox shim relies on `csw sandbox serve` starting uvicorn.run(..., host=...)
    import inspect

    from sandbox import cli as sandbox_cli

    src = inspect.getsource(sandbox_cli.serve)
    assert "uvicorn.run(" in src and "host=" in src, "docker/sandbox_serve.py must be revisited"


# -- versions -----------------------------------------------------------------------------------
def test_image_versions_match_the_lock():
    args = dockerfile_args()
    airflow = locked("apache-airflow")["version"]
    assert args["AIRFLOW_VERSION"] == airflow, (
        f"Dockerfile AIRFLOW_VERSION {args['AIRFLOW_VERSION']}, uv.lock {airflow}"
    )
    requires = lock()["requires-python"]  # e.g. ==3.11.*
    python = re.fullmatch(r"==(\d+\.\d+)\.\*", requires)
    assert python, f"uv.lock requires-python {requires!r}: pin one minor version"
    assert args["PYTHON_VERSION"] == python[1]
    assert re.search(
        r"^FROM python:\$\{PYTHON_VERSION\}-slim-\$\{DEBIAN_RELEASE\}", DOCKERFILE.read_text(), re.M
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"]), "pin uv exactly"
    project = locked("cs-warehouse")["version"]
    assert project == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, svc in compose()["services"].items():
        if "build" in svc:
            assert svc["build"]["args"]["AIRFLOW_VERSION"] == airflow, name
            assert svc["build"]["args"]["PYTHON_VERSION"] == python[1], name
            assert svc["image"] == f"cs-warehouse:{project}", (
                f"{name}: image tag {svc['image']}, project {project}"
            )
        if name == "sandbox":
            assert svc["image"] == f"cs-warehouse:{project}"
    images = {name: svc["image"] for name, svc in compose()["services"].items()}
    assert re.fullmatch(r"postgres:1[3-9](\.\d+)?-bookworm", images["postgres"]), (
        "pin PostgreSQL's major version"
    )
    assert re.fullmatch(r"redis:7\.\d+(\.\d+)?-bookworm", images["redis"]), "pin Redis"
    # dependencies the image and the tests rely on are locked
    for pkg in ("psycopg2-binary", "dbt-postgres", "dbt-duckdb", "duckdb"):
        locked(pkg)


def test_image_installs_from_the_lock_only():
    text = DOCKERFILE.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    syncs = re.findall(r"uv sync[^\n]*", code)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs), syncs
    assert "pip install" not in code.replace('pip install --no-cache-dir "uv==${UV_VERSION}"', "")
    assert "UV_PYTHON_DOWNLOADS=never" in code


CELERY_LOCKED = any(
    "apache-airflow-providers-celery" in {d["name"] for d in deps}
    for deps in (locked("cs-warehouse").get("optional-dependencies") or {}).values()
)


@pytest.mark.xfail(
    not CELERY_LOCKED,
    strict=True,
    reason="uv.lock has no `celery` extra yet: pyproject.toml needs "
    '[project.optional-dependencies] celery = ["apache-airflow-providers-celery>=3.26,<4"] and `uv lock`',
)
def test_celery_profile_installs_from_the_lock():
    extras = locked("cs-warehouse").get("optional-dependencies") or {}
    assert "celery" in extras, "the image builds the celery profile with `--extra celery`"
    assert "apache-airflow-providers-celery" in {d["name"] for d in extras["celery"]}
    for pkg in ("celery", "redis"):
        locked(pkg)
    build_args = {
        svc["build"]["args"]["CSW_EXTRAS"] for svc in compose()["services"].values() if "build" in svc
    }
    assert build_args == {""}, "the default image has no extras"


# -- the single writer ----------------------------------------------------------------------------
_DAGBAG = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={dags!r})
print(json.dumps({{
    "errors": {{k: str(v)[-500:] for k, v in bag.import_errors.items()}},
    "tasks": {{d.dag_id: {{t.task_id: [t.pool, t.queue] for t in d.tasks}} for d in bag.dags.values()}},
}}))
"""


def test_writer_tasks_are_pinned_to_one_queue(tmp_path):
    services = compose()["services"]
    writer_queue = service_env(services["airflow-scheduler"])["CSW_WRITER_QUEUE"]
    writer_pool = service_env(services["airflow-scheduler"])["CSW_WRITER_POOL"]
    default_queue = service_env(services["airflow-scheduler"])["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert writer_queue and writer_queue != default_queue
    # exactly one worker consumes the writer queue, one task at a time, never scaled
    consumers = {
        name: service_env(svc)
        for name, svc in services.items()
        if writer_queue in service_env(svc).get("CSW_WORKER_QUEUES", "").split(",")
    }
    assert list(consumers) == ["airflow-worker-duckdb"], f"writer queue consumed by {sorted(consumers)}"
    writer = services["airflow-worker-duckdb"]
    assert consumers["airflow-worker-duckdb"]["CSW_WORKER_CONCURRENCY"] == "1"
    assert int(writer.get("deploy", {}).get("replicas", 1)) == 1 and writer.get("hostname")
    assert service_env(services["airflow-worker"])["CSW_WORKER_QUEUES"] == default_queue

    # the DAGs, parsed as the dag-processor in the image parses them (cluster policy loaded)
    home = tmp_path / "airflow"
    (home / "config").mkdir(parents=True)
    shutil.copy(DOCKER / "config" / "airflow_local_settings.py", home / "config")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "CSW_DATA_DIR": str(tmp_path / "data"),
        "CSW_WRITER_QUEUE": writer_queue,
        "CSW_WRITER_POOL": writer_pool,
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _DAGBAG.format(dags=str(ROOT / "dags"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not parsed["errors"], parsed["errors"]
    writers = {
        (d, t): q for d, tasks in parsed["tasks"].items() for t, (p, q) in tasks.items() if p == writer_pool
    }
    assert writers, f"no task uses the pool {writer_pool}"
    misrouted = {k: q for k, q in writers.items() if q != writer_queue}
    assert not misrouted, f"writer tasks not on queue {writer_queue}: {misrouted}"
    others = [
        (d, t)
        for d, tasks in parsed["tasks"].items()
        for t, (p, q) in tasks.items()
        if p != writer_pool and q == writer_queue
    ]
    assert not others, f"tasks outside the writer pool on the writer queue: {others}"
    # the DAGs we know about: the loader, dbt, the gate, the forecast and the publisher
    for dag_id, task_id in (("cs_ingest", "load"), ("cs_transform", "dbt_build"), ("cs_publish", "publish")):
        if dag_id in parsed["tasks"]:
            assert (dag_id, task_id) in writers, f"{dag_id}.{task_id} must be a writer task"


ASYNC_DRIVER_LOCKED = any(p["name"] == "asyncpg" for p in lock()["package"])


@pytest.mark.xfail(
    not ASYNC_DRIVER_LOCKED,
    strict=True,
    reason="uv.lock has no asyncpg: Airflow 3.3 also opens an async engine on a PostgreSQL metadata DB "
    "(postgresql+asyncpg), so the image's Airflow cannot start; add `asyncpg>=0.30` to pyproject.toml",
)
def test_postgres_metadata_drivers_are_locked():
    deps = {d["name"] for d in locked("cs-warehouse")["dependencies"]}
    assert {"psycopg2-binary", "asyncpg"} <= deps, "the image needs both PostgreSQL drivers"
