from tests.pg import db_url, pg_cluster, pg_url  # noqa: F401  (fixtures: a fresh database on each engine)
