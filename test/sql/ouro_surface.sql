-- ouro_surface.sql -- the SQL surface the core's table describes, as PostgreSQL gives it:
-- ranges equal to SQLite's, hints that name only settings that exist, items counted from 1
-- in every message, ouro.on_error on batch items, and classification sized by the core's
-- exact context count (test/sqlite/test_sqlite.py checks the same in SQLite).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;
\set SHOW_CONTEXT never

-- max_tokens: 1 .. 1048576, the context caps the reply
SELECT ouro_generate('Hi', max_tokens := 1048577);
SET ouro.context_length = 24;
SELECT length(ouro_generate('Hi', max_tokens := 1048576)) > 0 AS max_tokens_limit_accepted;
RESET ouro.context_length;

-- hints: an option without a setting names its default, not an ouro.* setting
SELECT ouro_generate('Hi', temperature := 101);
SELECT ouro_generate('Hi', max_tokens := 0);

-- items count from 1 everywhere
SELECT ouro_classify('x', ARRAY['a', '']);
SELECT ouro_classify('x', ARRAY['a', NULL]);
SELECT ouro_generate('Hi', stop := ARRAY['a', '']);
SELECT ouro_generate_batch(ARRAY['Hi', ''], max_tokens := 2);
SELECT ouro_detokenize(ARRAY[1, 49152]);
SET ouro.context_length = 100;
SELECT ouro_classify_batch(ARRAY['short', repeat('word ', 80)], ARRAY['yes', 'no']);

-- ouro.on_error = null: the bad item alone gives NULL
SET ouro.on_error = 'null';
SELECT ouro_classify_batch(ARRAY['short', repeat('word ', 80), NULL, 'also short'], ARRAY['yes', 'no'])
       IS NOT DISTINCT FROM ARRAY[ouro_classify('short', ARRAY['yes', 'no']), NULL, NULL,
                                  ouro_classify('also short', ARRAY['yes', 'no'])] AS bad_input_gives_null;
SELECT ouro_generate_batch(ARRAY['Hi', '', 'Hi'], max_tokens := 2)
       = ARRAY[ouro_generate('Hi', max_tokens := 2), NULL, ouro_generate('Hi', max_tokens := 2)] AS bad_prompt_gives_null;
RESET ouro.on_error;

-- the session a classification gets is what the core says it needs, not a guess
SELECT ouro_classify('short', ARRAY['yes', 'no']) IN ('yes', 'no') AS fits_in_100;
SELECT ouro_classify(repeat('word ', 80), ARRAY['yes', 'no']);
RESET ouro.context_length;
SELECT ouro_classify(repeat('word ', 80), ARRAY['yes', 'no']) IN ('yes', 'no') AS fits_by_default;
