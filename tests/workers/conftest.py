from tests.pg import db_url, pg_cluster  # noqa: F401  (the session's PostgreSQL cluster; a fresh database per engine)
