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
