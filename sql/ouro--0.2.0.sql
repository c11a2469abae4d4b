/*
 * ouro--0.2.0.sql -- install script of the PostgreSQL extension ouro 0.2.0.
 *
 * The SQL surface shared with the SQLite extension (shared design:
 * sql-surface.md): every function with named arguments and defaults, so
 * `ouro_generate(prompt, max_loops := 4)` works.  A NULL option means its
 * default (the matching ouro.* setting, else the model's own), so nothing
 * that takes options is STRICT; a NULL prompt or input gives NULL.
 *
 * Volatility: anything that runs or reads a model is VOLATILE (the files and
 * ouro.* settings may change between calls, and a call is too costly for the
 * planner to repeat or fold); the tokenizer functions are STABLE (cheap, and
 * fixed within a statement).  Everything that only reads the model and the
 * settings is PARALLEL SAFE: each parallel worker maps the same weights.
 * ouro_model_info is PARALLEL RESTRICTED (it reports this backend's cache);
 * registration writes a table and is PARALLEL UNSAFE.
 */

-- complain if the script is sourced in psql rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION ouro" to load this file. \quit

-- Named models: read by the functions' C code with no privilege check, so
-- PUBLIC needs (and gets) no privilege on the table itself.
CREATE TABLE ouro_models (
    name text PRIMARY KEY CHECK (name <> ''),
    path text NOT NULL CHECK (path LIKE '/%')
);
REVOKE ALL ON ouro_models FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ouro_models', '');
COMMENT ON TABLE ouro_models IS
'Models registered by superusers with ouro_register_model(name, path); the model argument of every function selects one by name.';

-- Generation ----------------------------------------------------------------

CREATE FUNCTION ouro_generate(
    prompt text,
    max_loops int DEFAULT NULL,
    max_tokens int DEFAULT NULL,
    temperature float8 DEFAULT NULL,
    exit_threshold float8 DEFAULT NULL,
    seed bigint DEFAULT NULL,
    stop text[] DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'pg_ouro_generate'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION ouro_generate(text, int, int, float8, float8, bigint, text[], text) IS
'Continues prompt as raw text. max_loops 1..16 (NULL: ouro.max_loops, else the model''s total_ut_steps), max_tokens (NULL: ouro.max_tokens), temperature 0..100 (0 = greedy), exit_threshold 0..1 (adaptive depth, see ouro.depth; NULL: ouro.exit_threshold, else the model''s rule), seed (NULL: fixed), stop strings, model (a registered name; NULL: ouro.model_path). NULL prompt gives NULL.';

CREATE FUNCTION ouro_chat(
    message text,
    system text DEFAULT NULL,
    max_loops int DEFAULT NULL,
    max_tokens int DEFAULT NULL,
    temperature float8 DEFAULT NULL,
    exit_threshold float8 DEFAULT NULL,
    seed bigint DEFAULT NULL,
    stop text[] DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'pg_ouro_chat'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION ouro_chat(text, text, int, int, float8, float8, bigint, text[], text) IS
'Wraps message (and system) in the model''s chat template and returns the assistant''s reply; options as ouro_generate. NULL message gives NULL.';

CREATE FUNCTION ouro_generate_detail(
    prompt text,
    max_loops int DEFAULT NULL,
    max_tokens int DEFAULT NULL,
    temperature float8 DEFAULT NULL,
    exit_threshold float8 DEFAULT NULL,
    seed bigint DEFAULT NULL,
    stop text[] DEFAULT NULL,
    model text DEFAULT NULL,
    OUT text text,
    OUT n_tokens int,
    OUT exit_steps int[],
    OUT mean_depth float8,
    OUT stop_reason text)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_ouro_generate_detail'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION ouro_generate_detail(text, int, int, float8, float8, bigint, text[], text) IS
'As ouro_generate, with the depth spent: the text, its number of new tokens, for each token the 1-based loop step that gave its logits, their mean, and why generation stopped (length, eos, stop). NULL prompt gives NULL.';

-- Batching rows ---------------------------------------------------------------
-- Array forms: item i of the result belongs to item i of the array (same
-- subscripts; NULL items give NULL).  Build the array with array_agg(... ORDER
-- BY key) and match results back with unnest(ids, results) or WITH
-- ORDINALITY.  They run ouro.batch_size sequences at once.

CREATE FUNCTION ouro_generate_batch(
    prompts text[],
    max_loops int DEFAULT NULL,
    max_tokens int DEFAULT NULL,
    temperature float8 DEFAULT NULL,
    exit_threshold float8 DEFAULT NULL,
    seed bigint DEFAULT NULL,
    stop text[] DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', 'pg_ouro_generate_batch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 1000000;
COMMENT ON FUNCTION ouro_generate_batch(text[], int, int, float8, float8, bigint, text[], text) IS
'ouro_generate for every prompt of a one-dimensional array, decoded together ouro.batch_size prompts at a time (more run in waves): item i is ouro_generate(prompts[i], ...) with the same options and the same text. NULL items give NULL items, an empty array an empty array, NULL prompts NULL; under ouro.on_error = null a bad item gives NULL and a WARNING.';

-- Classification ------------------------------------------------------------

CREATE FUNCTION ouro_classify(
    input text,
    labels text[],
    instruction text DEFAULT NULL,
    max_loops int DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'pg_ouro_classify'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION ouro_classify(text, text[], text, int, text) IS
'The label (one of labels, 1..10000 non-NULL items) the model finds most likely for input, scored as continuations of a chat prompt; never free-generates. NULL input or labels gives NULL.';

CREATE FUNCTION ouro_classify_scores(
    input text,
    labels text[],
    instruction text DEFAULT NULL,
    max_loops int DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pg_ouro_classify_scores'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION ouro_classify_scores(text, text[], text, int, text) IS
'{"label": probability, ...} for every label (they sum to 1); arguments as ouro_classify. NULL input or labels gives NULL.';

CREATE FUNCTION ouro_classify_batch(
    inputs text[],
    labels text[],
    instruction text DEFAULT NULL,
    max_loops int DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', 'pg_ouro_classify_batch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION ouro_classify_batch(text[], text[], text, int, text) IS
'ouro_classify for every input of a one-dimensional array: the prompt tokens the inputs share are computed once, and max(ouro.batch_size, labels + 1) sequences run inputs together. Item i is ouro_classify(inputs[i], ...); NULL items give NULL items, an empty array an empty array, NULL inputs or labels NULL.';

CREATE FUNCTION ouro_classify_scores_batch(
    inputs text[],
    labels text[],
    instruction text DEFAULT NULL,
    max_loops int DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS jsonb[]
AS 'MODULE_PATHNAME', 'pg_ouro_classify_scores_batch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION ouro_classify_scores_batch(text[], text[], text, int, text) IS
'ouro_classify_scores for every input of a one-dimensional array, computed as ouro_classify_batch does; item i is ouro_classify_scores(inputs[i], ...). NULL items give NULL items, an empty array an empty array, NULL inputs or labels NULL.';

-- Depth ---------------------------------------------------------------------

CREATE FUNCTION ouro_depth(
    input text,
    exit_threshold float8 DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS float8
AS 'MODULE_PATHNAME', 'pg_ouro_depth'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION ouro_depth(text, float8, text) IS
'Loop steps the exit gate spends on input: the mean over its tokens of the expected exit step, or with exit_threshold 0..1 of the Q-exit step. NULL input, or input without tokens, gives NULL.';

CREATE FUNCTION ouro_depth_batch(
    inputs text[],
    exit_threshold float8 DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS float8[]
AS 'MODULE_PATHNAME', 'pg_ouro_depth_batch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION ouro_depth_batch(text[], float8, text) IS
'ouro_depth for every input of a one-dimensional array, the inputs run together as sequences of one forward pass (ouro.batch_size at a time). Item i is ouro_depth(inputs[i], ...); NULL items and items without tokens give NULL items, an empty array an empty array, NULL inputs NULL.';

CREATE FUNCTION ouro_token_depths(
    input text,
    exit_threshold float8 DEFAULT NULL,
    model text DEFAULT NULL)
RETURNS TABLE (pos int, token text, exit_pdf float8[], expected_depth float8, exit_step int)
AS 'MODULE_PATHNAME', 'pg_ouro_token_depths'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE COST 10000 ROWS 32;
COMMENT ON FUNCTION ouro_token_depths(text, float8, text) IS
'The exit gate token by token: 0-based pos, the token''s text, its exit probability per loop step, its expected exit step and its 1-based Q-exit step. NULL input gives no rows.';

-- Tokenizer -----------------------------------------------------------------

CREATE FUNCTION ouro_tokenize(input text, model text DEFAULT NULL)
RETURNS int[]
AS 'MODULE_PATHNAME', 'pg_ouro_tokenize'
LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION ouro_tokenize(text, text) IS
'The model''s token ids for input (no special tokens added). NULL input gives NULL.';

CREATE FUNCTION ouro_detokenize(ids int[], model text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'pg_ouro_detokenize'
LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION ouro_detokenize(int[], text) IS
'The text of token ids (0 .. vocabulary size - 1; special tokens kept, so it inverts ouro_tokenize). NULL ids gives NULL.';

CREATE FUNCTION ouro_token_count(input text, model text DEFAULT NULL)
RETURNS int
AS 'MODULE_PATHNAME', 'pg_ouro_token_count'
LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION ouro_token_count(text, text) IS
'Number of tokens of input. NULL input gives NULL.';

-- Information ---------------------------------------------------------------

CREATE FUNCTION ouro_model_info(model text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pg_ouro_model_info'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION ouro_model_info(text) IS
'The model (NULL: ouro.model_path): config, parameter count, dtypes, file and mapped bytes, and this backend''s state: loaded_in_process (before this call), loads, load_ms, and its cached session: session_kv_bytes, session_n_ctx, session_max_loops, session_kv_type (f32|f16), session_precision (exact|bf16). Loads the model if needed.';

CREATE FUNCTION ouro_version()
RETURNS text
AS 'MODULE_PATHNAME', 'pg_ouro_version'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION ouro_version() IS 'Version of the ouro runtime, e.g. 0.2.0.';

CREATE FUNCTION ouro_build_info()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pg_ouro_build_info'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION ouro_build_info() IS
'The build: version, SIMD level, AMX tiles, bf16 dot products, the precision auto runs at (precision_auto), OpenMP, BLAS, processor count, the PostgreSQL version built against, and the threads ouro.threads gives now.';

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

-- Model registration (superuser only, checked inside the functions) ---------

CREATE FUNCTION ouro_register_model(name text, path text)
RETURNS void
AS 'MODULE_PATHNAME', 'pg_ouro_register_model'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION ouro_register_model(text, text) IS
'Superuser only: makes name (for the model argument) select the model folder path, an absolute path on the server; replaces an earlier registration of name.';

CREATE FUNCTION ouro_unregister_model(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pg_ouro_unregister_model'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION ouro_unregister_model(text) IS
'Superuser only: forgets a registered model name; false when it was not registered.';

REVOKE ALL ON FUNCTION ouro_register_model(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION ouro_unregister_model(text) FROM PUBLIC;

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
