"""A throwaway PostgreSQL server for tests: initdb + pg_ctl under a temp dir, on a free port.

    with PostgresServer() as pg:
        pg.create_database("airflow")
        url = pg.url("airflow")                  # postgresql+psycopg2://csw@127.0.0.1:<port>/airflow

The server binaries come from the Debian package (`apt-get install postgresql`), found on
PATH or under /usr/lib/postgresql/<version>/bin; `find_pg_bin()` returns None when they are
missing, and tests skip with `SKIP_REASON`. PostgreSQL refuses to run as root: when the
tests run as root (CI containers), the server runs as the `postgres` user the package
creates (or `nobody`), in a temp dir that user owns. Durability is off (fsync, full-page
writes): this database lives for one test session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "csw"
SKIP_REASON = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under "
    "/usr/lib/postgresql/*/bin: install them with `apt-get install -y --no-install-recommends postgresql`"
)


class PostgresError(RuntimeError):
    """The throwaway PostgreSQL server did not start or stop; the message holds its log."""


def find_pg_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres (newest version first), or None."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in versions]
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root, else None (run as us)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError(
        "running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL"
    )


class PostgresServer:
    """initdb + pg_ctl start on 127.0.0.1:<free port>; `stop()` removes everything."""

    def __init__(self, bindir: Path | None = None, port: int | None = None):
        found = bindir or find_pg_bin()
        if found is None:
            raise PostgresError(SKIP_REASON)
        self.bindir = Path(found)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = SUPERUSER
        self.root: Path | None = None
        self.started = False

    # -- paths -----------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    # -- process control ---------------------------------------------------------------------
    def _cmd(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        runner = _run_as()
        prefix = []
        if runner:
            if shutil.which("runuser") is None:
                raise PostgresError(
                    "running as root needs `runuser` (util-linux) to start PostgreSQL as another user"
                )
            prefix = ["runuser", "-u", runner.pw_name, "--"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        proc = subprocess.run(
            prefix + args,
            capture_output=True,
            text=True,
            env=env,
            cwd=str(self.root),
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return proc

    def start(self) -> PostgresServer:
        # not under pytest's tmp dirs: those are private to root, and the server may run as
        # another user
        self.root = Path(tempfile.mkdtemp(prefix="csw-pg-"))
        runner = _run_as()
        if runner:
            os.chown(self.root, runner.pw_uid, runner.pw_gid)
        os.chmod(self.root, 0o700)
        init = self._cmd(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        if init.returncode != 0:
            self._cleanup()
            raise PostgresError(
                f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}"
            )
        options = " ".join(
            [
                f"-p {self.port}",
                f"-c listen_addresses={self.host}",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                "-c timezone=UTC",
            ]
        )
        ctl = self._cmd(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            timeout=90,
        )
        if ctl.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else ""
            self._cleanup()
            raise PostgresError(f"pg_ctl start failed ({ctl.returncode}):\n{ctl.stdout}\n{ctl.stderr}\n{log}")
        self.started = True
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 30) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg2.connect(**self.params("postgres"), connect_timeout=3).close()
                return
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL on port {self.port} does not answer: {exc}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if self.started:
            self._cmd(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
                timeout=60,
            )
            self.started = False
        self._cleanup()

    def _cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------------
    def params(self, dbname: str = "postgres") -> dict:
        return {"host": self.host, "port": self.port, "user": self.user, "dbname": dbname}

    def connect(self, dbname: str = "postgres"):
        import psycopg2

        return psycopg2.connect(**self.params(dbname))

    def url(self, dbname: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        con = self.connect("postgres")
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'create database "{name}"')
        finally:
            con.close()
        return name


# -- moving raw data over -------------------------------------------------------------------------
_PG_TYPES = {
    "VARCHAR": "text",
    "JSON": "jsonb",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
    "TIME": "time",
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "numeric",
    "DOUBLE": "double precision",
    "FLOAT": "real",
}


def copy_duckdb_schema(
    duckdb_path: Path, pg: PostgresServer, dbname: str, schema: str = "raw"
) -> dict[str, int]:
    """Copy every table of a DuckDB schema into PostgreSQL (same names, JSON as jsonb),
    through CSV files and COPY: no DuckDB extension, no network. Returns rows per table."""
    import duckdb

    con = duckdb.connect(str(duckdb_path), read_only=True)
    pg_con = pg.connect(dbname)
    counts = {}
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where schema_name = ? order by 1", [schema]
            ).fetchall()
        ]
        with pg_con, pg_con.cursor() as cur, tempfile.TemporaryDirectory(prefix="csw-copy-") as tmp:
            cur.execute(f'create schema if not exists "{schema}"')
            for table in tables:
                columns = con.execute(
                    "select column_name, data_type from duckdb_columns() "
                    "where schema_name = ? and table_name = ? order by column_index",
                    [schema, table],
                ).fetchall()
                unknown = [(c, t) for c, t in columns if t not in _PG_TYPES and not t.startswith("DECIMAL")]
                if unknown:
                    raise PostgresError(
                        f"{schema}.{table}: no PostgreSQL type for {unknown}; extend _PG_TYPES"
                    )
                ddl = ", ".join(
                    f'"{c}" {_PG_TYPES.get(t, t.lower().replace("decimal", "numeric"))}' for c, t in columns
                )
                cur.execute(f'create table "{schema}"."{table}" ({ddl})')
                csv = Path(tmp) / f"{table}.csv"
                con.execute(f'copy "{schema}"."{table}" to \'{csv}\' (format csv, header false)')
                with open(csv, encoding="utf-8") as f:
                    cur.copy_expert(f'copy "{schema}"."{table}" from stdin with (format csv)', f)
                counts[table] = cur.rowcount
                cur.execute(f'analyze "{schema}"."{table}"')
    finally:
        con.close()
        pg_con.close()
    return counts
