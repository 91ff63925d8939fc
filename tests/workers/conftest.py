from tests.pg import pg_cluster  # noqa: F401  (the session's PostgreSQL cluster)
