"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary directory, on a free
loopback port, gone at the end of the session.

The binaries are Debian's (`apt-get install postgresql`, which .ci/run does). initdb refuses to run as
root, so as root the cluster is made and run by the `postgres` user the package creates. Where the
binaries are missing the tests that need PostgreSQL skip saying so, unless GROUNDCTL_REQUIRE_PG=1 (CI),
where a missing PostgreSQL is a failure, not a skip.

Fixtures: `pg_cluster` (session) and `pg_url` (a fresh, empty database per test).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REQUIRE = os.environ.get("GROUNDCTL_REQUIRE_PG") == "1"


def pg_bindir() -> Path | None:
    """PG_BINDIR, else the newest /usr/lib/postgresql/N/bin, else whatever initdb is on PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.user: str | None = None  # OS user that runs the server; None = this process's user
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as e:
                raise RuntimeError("running as root and there is no 'postgres' user to run initdb as") from e
            self.user = "postgres"
        # not under pytest's tmp_path: that is 0700 root's, and the postgres user must reach its directory
        self.dir = Path(tempfile.mkdtemp(prefix="groundctl-pg-"))
        self.data = self.dir / "data"
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._names = itertools.count(1)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir)

    def start(self) -> "PgCluster":
        r = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-sync", "--locale=C")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
        # a test database: durability is the test's business (it kills processes, not the machine)
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", opts, "-w",
                      "-t", "60", "start")
        if r.returncode != 0:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}{log[-2000:]}")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_cluster: PgCluster | None = None
_why_not: str | None = None


def cluster_or_reason() -> tuple[PgCluster | None, str | None]:
    """One cluster per test process, started on first use; or why there is none."""
    global _cluster, _why_not
    if _cluster is None and _why_not is None:
        bindir = pg_bindir()
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _why_not = "psycopg is not installed (pip install -e '.[dev]')"
        else:
            if bindir is None or not (bindir / "initdb").exists():
                _why_not = ("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH; "
                            "apt-get install postgresql, or set PG_BINDIR)")
            else:
                try:
                    _cluster = PgCluster(bindir).start()
                    atexit.register(stop_cluster)  # also when the session ends without its teardown
                except Exception as e:  # noqa: BLE001 - the reason is reported, not swallowed
                    _why_not = f"could not start a PostgreSQL cluster: {e}"
    return _cluster, _why_not


def stop_cluster() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


def need_cluster() -> PgCluster:
    c, why = cluster_or_reason()
    if c is None:
        if REQUIRE:
            pytest.fail(f"GROUNDCTL_REQUIRE_PG=1 but {why}", pytrace=False)
        pytest.skip(f"needs PostgreSQL: {why}")
    return c


@pytest.fixture(scope="session")
def pg_cluster():
    c = need_cluster()
    yield c
    stop_cluster()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    return pg_cluster.create_database()


# the two engines a storage test runs on; `db_url` gives a fresh empty database of each
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'groundctl.db'}"
    return request.getfixturevalue("pg_cluster").create_database()
