"""Alembic migrations of the store's schema, shipped with the package and applied when a Store opens.

`upgrade(engine)` brings any database to the newest revision: an empty one from nothing, one made before
migrations existed (commit cef2046's create_all: the tables are there, alembic_version is not) by stamping
it as revision 0001 first. Several processes opening one database at once (API workers, flight workers)
take a lock so that exactly one of them migrates: a PostgreSQL advisory lock held for the migration's
transaction, a file lock beside an SQLite database.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, Table, inspect, text

HERE = Path(__file__).resolve().parent
BASELINE = "0001"
# any fixed 64-bit number unlikely to collide with another application's advisory locks
_PG_LOCK_KEY = 0x67726E64_6374_6C31 & 0x7FFFFFFFFFFFFFFF

log = logging.getLogger("groundctl.migrations")


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head() -> str:
    h = ScriptDirectory.from_config(config()).get_current_head()
    assert h is not None
    return h


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        yield
        return
    with open(db + ".migrate-lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _missing(conn: Connection, metadata: MetaData | None) -> list[Table]:
    if metadata is None:
        return []
    have = set(inspect(conn).get_table_names())
    return [t for t in metadata.sorted_tables if t.name not in have]


def upgrade(engine: Engine, revision: str = "head", *, metadata: MetaData | None = None) -> None:
    """Bring the database to `revision` (default: the newest). Cheap when it is already there.

    With `metadata`, then create the tables it declares that no migration has made yet (a module added a
    model without its migration): it works, loudly, and tests/storage/test_migrations.py fails until the
    migration is written (`alembic revision --autogenerate` against a database at head, then read it).
    """
    with engine.connect() as conn:
        if revision == "head" and current(conn) == head() and not _missing(conn, metadata):
            return
    lock = _sqlite_file_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    with lock, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # released at commit; the loser waits, then finds the work done
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        now = current(conn)
        if now is None and inspect(conn).has_table("deliveries"):
            log.info("database made before migrations: stamping it as revision %s", BASELINE)
            command.stamp(config(conn), BASELINE)
        if not (revision == "head" and now == head()):
            command.upgrade(config(conn), revision)
        missing = _missing(conn, metadata)
        if missing:
            log.warning("tables with no migration yet, created from the models: %s",
                        ", ".join(t.name for t in missing))
            metadata.create_all(conn, tables=missing)
