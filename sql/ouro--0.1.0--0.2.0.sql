/*
 * ouro--0.1.0--0.2.0.sql -- upgrade script of the PostgreSQL extension ouro, 0.1.0 to 0.2.0.
 *
 * Every change this version makes to the catalog, in the order a fresh install of
 * ouro--0.2.0.sql has it: after ALTER EXTENSION ouro UPDATE TO '0.2.0', the schema
 * equals a fresh 0.2.0 install.
 */

-- complain if the script is sourced in psql rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION ouro UPDATE TO '0.2.0'" to load this file. \quit

COMMENT ON FUNCTION ouro_version() IS 'Version of the ouro runtime, e.g. 0.2.0.';
COMMENT ON FUNCTION ouro_build_info() IS
'The build: version, SIMD level, AMX tiles, bf16 dot products, the precision auto runs at (precision_auto), OpenMP, BLAS, processor count, the PostgreSQL version built against, and the threads ouro.threads gives now.';

-- Depth of many inputs at once --------------------------------------------

CREATE FUNCTION ouro_depth_batch(
    inputs text[],
    exit_threshold float8 DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS float8[]
AS 'MODULE_PATHNAME', 'pg_ouro_depth_batch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION ouro_depth_batch(text[], float8, text) IS
'ouro_depth for every input of a one-dimensional array, the inputs run together as sequences of one forward pass (ouro.batch_size at a time). Item i is ouro_depth(inputs[i], ...); NULL items and items without tokens give NULL items, an empty array an empty array, NULL inputs NULL.';

-- Distributed tables (Citus) ------------------------------------------------
-- Citus refuses VOLATILE functions in an UPDATE of a distributed table, and
-- ouro's functions are VOLATILE (they read files and settings that may change
-- between statements).  This helper runs the UPDATE on each shard where the
-- shard lives, so each worker evaluates and commits its own rows.  It is
-- PL/pgSQL that names Citus's objects only at run time, so it installs, and
-- gives a clear error, where Citus is absent.

CREATE FUNCTION ouro_update_shards(
    relation regclass,
    set_clause text,
    where_clause text DEFAULT NULL)
RETURNS TABLE (shard_id bigint, node text, updated bigint)
LANGUAGE plpgsql CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
AS $function$
DECLARE
    command text;
    replicated bigint;
    failures int := 0;
    first_failure text;
    r record;
BEGIN
    IF relation IS NULL OR set_clause IS NULL THEN
        RAISE EXCEPTION 'relation and set_clause must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pg_catalog.to_regproc('pg_catalog.run_command_on_shards') IS NULL THEN
        RAISE EXCEPTION 'ouro_update_shards needs the citus extension'
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('Without Citus, run the UPDATE itself: UPDATE %s SET %s%s',
                                relation, set_clause, ' WHERE ' || where_clause);
    END IF;
    EXECUTE $q$SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1$q$
        INTO replicated USING relation;
    IF replicated = 0 THEN
        RAISE EXCEPTION 'relation "%" is not a Citus table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'For a local table run the UPDATE itself; distribute a table with create_distributed_table().';
    END IF;
    -- run_command_on_shards runs on one placement of each shard: a shard with
    -- copies (a reference table, or a replication factor above 1) would be
    -- updated in one copy only.
    EXECUTE $q$SELECT count(*) FROM (SELECT shardid FROM pg_catalog.pg_dist_shard_placement
                                     JOIN pg_catalog.pg_dist_shard USING (shardid)
                                     WHERE logicalrelid = $1 GROUP BY shardid
                                     HAVING count(*) > 1) s$q$
        INTO replicated USING relation;
    IF replicated > 0 THEN
        RAISE EXCEPTION 'relation "%" has shards with more than one copy', relation
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'ouro_update_shards updates one copy of each shard; copies would differ.',
                  HINT = 'Use it on hash-distributed tables with one copy of each shard.';
    END IF;

    -- run_command_on_shards puts each shard's name where the command says %s.
    command := 'UPDATE %s SET ' || replace(set_clause, '%', '%%')
               || coalesce(' WHERE ' || replace(where_clause, '%', '%%'), '');
    FOR r IN EXECUTE $q$SELECT s.shardid, s.success, s.result,
                               p.nodename || ':' || p.nodeport AS node
                        FROM pg_catalog.run_command_on_shards($1, $2) s
                        JOIN pg_catalog.pg_dist_shard_placement p USING (shardid)
                        ORDER BY s.shardid$q$
        USING relation, command
    LOOP
        IF r.success THEN
            shard_id := r.shardid;
            node := r.node;
            updated := substring(r.result FROM '^UPDATE ([0-9]+)$')::bigint;
            RETURN NEXT;
        ELSE
            failures := failures + 1;
            IF first_failure IS NULL THEN
                first_failure := format('shard %s on %s: %s', r.shardid, r.node,
                                        regexp_replace(r.result, '^ERROR:\s+', ''));
            END IF;
        END IF;
    END LOOP;
    IF failures > 0 THEN
        RAISE EXCEPTION 'ouro_update_shards: the UPDATE failed on % shard(s) of "%"', failures, relation
            USING DETAIL = 'First failure: ' || first_failure,
                  HINT = 'The other shards committed their rows; run it again with a where_clause that selects the rows still to do.';
    END IF;
END
$function$;
COMMENT ON FUNCTION ouro_update_shards(regclass, text, text) IS
'Citus only: runs UPDATE relation SET set_clause [WHERE where_clause] on every shard of a distributed table, on the worker that holds it (the shards in parallel, each committing on its own), for ouro''s functions, which Citus refuses in an UPDATE of a distributed table. One row per shard: shard_id, its node (host:port) and the rows updated; a failed shard makes it raise an error naming the shard and node after the others committed.';

-- Batching, progress and enrichment (0.2.0) ----------------------------------

CREATE FUNCTION ouro_stats()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pg_ouro_stats_fn'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION ouro_stats() IS
'This backend''s counters since it started: rows (generation, classification and depth calls computed on a non-NULL input, batched or not), batched_rows (of those, rows the batching node computed), batches (batched core calls) and tokens (generated).';

CREATE FUNCTION ouro_progress(
    OUT pid int,
    OUT function text,
    OUT model text,
    OUT rows_done bigint,
    OUT rows_total bigint,
    OUT tokens bigint,
    OUT tokens_per_second float8,
    OUT elapsed_seconds float8,
    OUT statement_start timestamptz,
    OUT updated_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_ouro_progress_fn'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED ROWS 8;
COMMENT ON FUNCTION ouro_progress() IS
'Every backend''s last progress report, read from shared memory (needs ouro in shared_preload_libraries): the function, model (a server path is shown to superusers only), rows done (rows_total when the job knows it), tokens generated, tokens per second and seconds since its statement started. The view ouro_progress keeps the statements still running.';

CREATE VIEW ouro_progress AS
SELECT p.pid, a.leader_pid, p.function, p.model, p.rows_done, p.rows_total, p.tokens,
       round(p.tokens_per_second::numeric, 1) AS tokens_per_second,
       round(p.elapsed_seconds::numeric, 1) AS elapsed_seconds,
       p.statement_start, p.updated_at, a.query
FROM ouro_progress() AS p
JOIN pg_catalog.pg_stat_activity AS a
  ON a.pid = p.pid AND a.state = 'active' AND a.query_start = p.statement_start;
COMMENT ON VIEW ouro_progress IS
'Statements running now that call ouro functions: per backend (parallel workers show their leader_pid), the function, model, rows done, tokens, tokens per second, elapsed seconds and the query.';

-- Failed rows of ouro_enrich.  The rows live in ouro_enrich_failures, which no role but the
-- extension's owner may read or write; every role reads and writes them through the view
-- ouro_enrich_errors, which shows (and lets change) only the rows of the tables whose output
-- column the role may fill: SELECT on the table and UPDATE on that column, the privileges
-- ouro_enrich itself needs.  So the caller of ouro_enrich records failures for the tables it
-- enriches, and no role reads, records, rewrites or deletes another's failures.
CREATE TABLE ouro_enrich_failures (
    relation regclass NOT NULL,
    output_column text NOT NULL,
    row_key text NOT NULL,
    input text,
    sqlstate text NOT NULL,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relation, output_column, row_key)
);
REVOKE ALL ON ouro_enrich_failures FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ouro_enrich_failures', '');
COMMENT ON TABLE ouro_enrich_failures IS
'Rows ouro_enrich could not fill, for every table (no privileges for other roles: use the view ouro_enrich_errors).';

CREATE VIEW ouro_enrich_errors WITH (security_barrier) AS
SELECT f.relation, f.output_column, f.row_key, f.input, f.sqlstate, f.error, f.failed_at
FROM ouro_enrich_failures AS f
WHERE pg_catalog.has_table_privilege(f.relation, 'SELECT')
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
              WHERE a.attrelid = f.relation AND a.attname = f.output_column
                AND a.attnum > 0 AND NOT a.attisdropped
                AND pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'UPDATE'))
WITH CASCADED CHECK OPTION;
GRANT SELECT, INSERT, UPDATE, DELETE ON ouro_enrich_errors TO PUBLIC;
COMMENT ON VIEW ouro_enrich_errors IS
'Rows ouro_enrich could not fill, of the tables whose output column you may fill (SELECT on the table, UPDATE on the column): the table, the output column, the row''s primary key as text (ROW(key)::text), the start of its input, and the SQLSTATE and message of its error. ouro_enrich skips the rows listed here; delete an entry to retry its row. Rows of other tables can be neither seen nor written.';

CREATE PROCEDURE ouro_enrich(
    relation regclass,
    input_column text,
    output_column text,
    max_loops int DEFAULT NULL,
    max_tokens int DEFAULT NULL,
    temperature float8 DEFAULT NULL,
    exit_threshold float8 DEFAULT NULL,
    seed bigint DEFAULT NULL,
    stop text[] DEFAULT NULL,
    model text DEFAULT NULL,
    chunk_size int DEFAULT 64)
AS 'MODULE_PATHNAME', 'pg_ouro_enrich'
LANGUAGE C;
COMMENT ON PROCEDURE ouro_enrich(regclass, text, text, int, int, float8, float8, bigint, text[], text, int) IS
'Fills output_column with ouro_generate(input_column, options...) where it is NULL, chunk_size rows per transaction (each chunk one batched generation). Failed rows go to ouro_enrich_errors instead of stopping the job; run it again after a cancel, crash or restart and it goes on where it stopped. The table needs a primary key. CALL it outside a transaction block.';
