-- Run once by the postgres image when a shard's data volume is created
-- (/docker-entrypoint-initdb.d): shared_preload_libraries alone loads the
-- module, but its view exists only after CREATE EXTENSION; without it the
-- slow-query figures of persist's DB monitor were always empty.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
