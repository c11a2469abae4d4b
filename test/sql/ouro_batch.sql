-- ouro_batch.sql -- the batch forms (ouro_generate_batch, ouro_classify_batch,
-- ouro_classify_scores_batch) give, item by item, what the per-row functions give: on the
-- golden cases of test/data/models/*/expected.json, with NULL items, empty arrays, more
-- prompts than ouro.batch_size (waves), options, ouro.on_error, and matched back to rows.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;
-- the library defines the ouro.* settings when it is loaded: by preloading, by a session's
-- first ouro call, or by LOAD
LOAD 'ouro';
SHOW ouro.batch_size;
CREATE TEMP TABLE bmodels AS
SELECT m AS name, regexp_replace(current_setting('ouro.model_path'), '[^/]+$', m) AS path
FROM unnest(ARRAY['tiny-mha-bf16', 'tiny-gqa-f32-tied', 'tiny-mqa-f16-sharded']) AS m;
SELECT ouro_register_model(name, path) FROM bmodels ORDER BY name;
CREATE TEMP TABLE bcases AS
SELECT m.name AS model, c ->> 'name' AS case_name, c ->> 'prompt' AS prompt,
       c ->> 'greedy_text' AS greedy_text
FROM bmodels m, jsonb_array_elements(pg_read_file(m.path || '/expected.json')::jsonb -> 'cases') AS c;

-- The 5 case prompts of each model in one call give every greedy_text.
SELECT model, count(*) AS cases,
       ouro_generate_batch(array_agg(prompt ORDER BY case_name), max_tokens := 12, model := model)
         = array_agg(greedy_text ORDER BY case_name) AS batch_equals_greedy_text
FROM bcases GROUP BY model ORDER BY model;

-- Per row and batched, with options, and with more prompts than ouro.batch_size (waves).
CREATE TEMP TABLE q (id int PRIMARY KEY, prompt text, answer text);
INSERT INTO q (id, prompt)
SELECT i, (ARRAY['The capital of France is', 'Hi', 'Q: What is 17 * 23? A:',
                 'Once upon a time', 'SELECT 1'])[1 + i % 5] || ' #' || i
FROM generate_series(1, 11) AS i;
CREATE FUNCTION pg_temp.same(p_threshold float8, p_temperature float8, p_loops int, p_stop text[])
RETURNS bool LANGUAGE sql AS $$
    SELECT ouro_generate_batch(array_agg(prompt ORDER BY id), max_loops := p_loops, max_tokens := 8,
                               temperature := p_temperature, exit_threshold := p_threshold,
                               stop := p_stop)
           = array_agg(ouro_generate(prompt, max_loops := p_loops, max_tokens := 8,
                                     temperature := p_temperature, exit_threshold := p_threshold,
                                     stop := p_stop) ORDER BY id)
    FROM q;
$$;
SELECT pg_temp.same(NULL, NULL, NULL, NULL) AS greedy,
       pg_temp.same(NULL, 0.8, NULL, NULL) AS sampled,
       pg_temp.same(0.5, NULL, NULL, NULL) AS adaptive,
       pg_temp.same(NULL, NULL, 2, NULL) AS two_loops,
       pg_temp.same(NULL, NULL, NULL, ARRAY[' the', '.']) AS stop_strings;
SET ouro.batch_size = 3;
SELECT pg_temp.same(NULL, NULL, NULL, NULL) AS waves_of_3, pg_temp.same(0.5, 0.7, NULL, NULL) AS waves_sampled;
SET ouro.batch_size = 1;
SELECT pg_temp.same(NULL, NULL, NULL, NULL) AS one_at_a_time;
RESET ouro.batch_size;

-- NULL items, empty arrays, NULL arrays, subscripts kept.
SELECT ouro_generate_batch(ARRAY[NULL, 'Hi', NULL], max_tokens := 4)
       IS NOT DISTINCT FROM ARRAY[NULL, ouro_generate('Hi', max_tokens := 4), NULL] AS null_items;
SELECT ouro_generate_batch(ARRAY[NULL, NULL]::text[]) AS only_nulls;
SELECT ouro_generate_batch(ARRAY[]::text[]) AS empty, ouro_generate_batch(NULL) AS null_array;
SELECT array_lower(ouro_generate_batch('[0:1]={Hi,Hello}'::text[], max_tokens := 2), 1) AS lower_bound_kept;

-- Matching results back to rows.
WITH b AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(prompt ORDER BY id) AS ps FROM q)
SELECT bool_and(r.answer = ouro_generate(q.prompt, max_tokens := 6)) AS every_row_matches, count(*) AS rows
FROM (SELECT unnest(ids) AS id, unnest(ouro_generate_batch(ps, max_tokens := 6)) AS answer FROM b) AS r
JOIN q USING (id);
WITH b AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(prompt ORDER BY id) AS ps FROM q)
UPDATE q SET answer = r.answer
FROM (SELECT unnest(ids) AS id, unnest(ouro_generate_batch(ps, max_tokens := 6)) AS answer FROM b) AS r
WHERE q.id = r.id;
SELECT count(*) FILTER (WHERE answer = ouro_generate(prompt, max_tokens := 6)) AS updated_rows_match FROM q;

-- Errors: bad arrays and options abort; a bad item is a row error (ouro.on_error).
\set VERBOSITY terse
SELECT ouro_generate_batch(ARRAY[['a', 'b'], ['c', 'd']]);
SELECT ouro_generate_batch(ARRAY['Hi'], max_loops := 0);
SELECT ouro_generate_batch(ARRAY[1, 2]);
SELECT ouro_generate_batch(ARRAY['Hi', ''], max_tokens := 2);
SET ouro.on_error = 'null';
SELECT ouro_generate_batch(ARRAY['Hi', '', 'Hello'], max_tokens := 2)
       IS NOT DISTINCT FROM ARRAY[ouro_generate('Hi', max_tokens := 2), NULL,
                                  ouro_generate('Hello', max_tokens := 2)] AS bad_item_gives_null;
RESET ouro.on_error;
SET ouro.batch_size = 0;
SET ouro.batch_size = 257;
\set VERBOSITY default

-- Classification: the batch equals ouro_classify / ouro_classify_scores item by item.
CREATE TEMP TABLE reviews (id int PRIMARY KEY, review text);
INSERT INTO reviews VALUES (1, 'I loved it'), (2, 'awful'), (3, NULL), (4, 'meh'),
    (5, 'The capital of France is Paris.'), (6, 'ok I guess'), (7, 'Terrible service, never again'),
    (8, 'Best day ever');
CREATE FUNCTION pg_temp.cls_same(p_labels text[]) RETURNS TABLE (labels_equal bool, scores_close bool)
LANGUAGE sql AS $$
    WITH b AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(review ORDER BY id) AS rs FROM reviews),
         r AS (SELECT unnest(ids) AS id, unnest(ouro_classify_batch(rs, p_labels)) AS label,
                      unnest(ouro_classify_scores_batch(rs, p_labels)) AS scores FROM b)
    SELECT bool_and(r.label IS NOT DISTINCT FROM ouro_classify(v.review, p_labels)),
           bool_and(CASE WHEN v.review IS NULL THEN r.scores IS NULL ELSE
                    (SELECT bool_and(abs((r.scores ->> k)::float8 - (s ->> k)::float8) < 1e-6)
                     FROM ouro_classify_scores(v.review, p_labels) AS s, jsonb_object_keys(s) AS k) END)
    FROM r JOIN reviews v USING (id);
$$;
SELECT * FROM pg_temp.cls_same(ARRAY['positive', 'negative', 'neutral']);
SET ouro.batch_size = 1;
SELECT * FROM pg_temp.cls_same(ARRAY['positive', 'negative', 'neutral']);
RESET ouro.batch_size;
SELECT * FROM pg_temp.cls_same(ARRAY(SELECT 'label ' || i FROM generate_series(1, 20) AS i));
SELECT ouro_classify_batch(ARRAY['I loved it', 'awful'], ARRAY['yes', 'no'], 'Is it positive?', 2)
       = ARRAY[ouro_classify('I loved it', ARRAY['yes', 'no'], 'Is it positive?', 2),
               ouro_classify('awful', ARRAY['yes', 'no'], 'Is it positive?', 2)] AS options_equal;
SELECT ouro_classify_batch(ARRAY[]::text[], ARRAY['a', 'b']) AS empty,
       ouro_classify_scores_batch(ARRAY[]::text[], ARRAY['a', 'b']) AS empty_scores,
       ouro_classify_batch(NULL, ARRAY['a']) AS null_inputs,
       ouro_classify_batch(ARRAY['x'], NULL) AS null_labels,
       ouro_classify_scores_batch(ARRAY[NULL]::text[], ARRAY['a', 'b']) AS null_item;
SELECT pg_typeof(ouro_classify_scores_batch(ARRAY['x'], ARRAY['a', 'b'])) AS scores_type;
\set VERBOSITY terse
SELECT ouro_classify_batch(ARRAY[['a'], ['b']], ARRAY['x', 'y']);
SELECT ouro_classify_batch(ARRAY['a'], ARRAY['x', 'x']);
SELECT ouro_classify_batch(ARRAY['a'], ARRAY[]::text[]);
SELECT ouro_classify_scores_batch(ARRAY['a'], ARRAY['x', 'y'], max_loops := 17);
-- An item too long for the context is a row error for that item alone.
SET ouro.on_error = 'null';
SET ouro.context_length = 200;
SELECT ouro_classify_batch(ARRAY['I loved it', repeat('word ', 300), 'awful'], ARRAY['positive', 'negative'])
       IS NOT DISTINCT FROM ARRAY[ouro_classify('I loved it', ARRAY['positive', 'negative']), NULL,
                                  ouro_classify('awful', ARRAY['positive', 'negative'])] AS long_item_gives_null;
SELECT ouro_generate_batch(ARRAY['Hi', repeat('word ', 300)], max_tokens := 2)
       IS NOT DISTINCT FROM ARRAY[ouro_generate('Hi', max_tokens := 2), NULL] AS long_prompt_gives_null;
RESET ouro.context_length;
RESET ouro.on_error;
\set VERBOSITY default

-- ouro_depth_batch: item i is ouro_depth(inputs[i], ...), bit for bit, with and without a
-- threshold, for batches of several sizes; NULL items, empty texts and a too-long item.
CREATE FUNCTION pg_temp.depth_same(p_threshold float8) RETURNS TABLE (items int, same bool)
LANGUAGE sql AS $$
    WITH b AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(review ORDER BY id) AS rs FROM reviews),
         r AS (SELECT unnest(ids) AS id, unnest(ouro_depth_batch(rs, p_threshold)) AS d FROM b)
    SELECT count(*)::int, bool_and(r.d IS NOT DISTINCT FROM ouro_depth(v.review, p_threshold)) FROM r JOIN reviews v USING (id);
$$;
SELECT * FROM pg_temp.depth_same(NULL);
SELECT * FROM pg_temp.depth_same(0.5);
SET ouro.batch_size = 3;
SELECT * FROM pg_temp.depth_same(NULL);
RESET ouro.batch_size;
SELECT ouro_depth_batch(ARRAY['The capital of France is', NULL, '', 'Hi'])
       IS NOT DISTINCT FROM ARRAY[ouro_depth('The capital of France is'), NULL, NULL, ouro_depth('Hi')]
       AS items_equal,
       ouro_depth_batch(ARRAY[]::text[]) AS empty,
       ouro_depth_batch(NULL) AS null_inputs,
       pg_typeof(ouro_depth_batch(ARRAY['x'])) AS depth_type;
\set VERBOSITY terse
SELECT ouro_depth_batch(ARRAY[['a'], ['b']]);
SELECT ouro_depth_batch(ARRAY['a'], exit_threshold := 2);
SET ouro.context_length = 200;
SELECT ouro_depth_batch(ARRAY['Hi', repeat('word ', 300)]);
SET ouro.on_error = 'null';
SELECT ouro_depth_batch(ARRAY['Hi', repeat('word ', 300)])
       IS NOT DISTINCT FROM ARRAY[ouro_depth('Hi'), NULL] AS long_item_gives_null;
RESET ouro.context_length;
RESET ouro.on_error;
\set VERBOSITY default
