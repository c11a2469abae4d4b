-- ouro_basic.sql -- every function of the extension: defaults, named arguments, NULLs,
-- settings, the per-backend model cache and registered models.
-- ouro.model_path is set for the test role by test/suites/pg.sh (the tiny-mha-bf16 model).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;

-- the functions, their volatility, strictness and parallel safety
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'ouro'
ORDER BY p.proname;

SELECT ouro_version();
SELECT ouro_build_info() ?& ARRAY['version', 'simd', 'openmp', 'blas', 'threads', 'postgres', 'threads_used'] AS build_info_keys,
       (ouro_build_info() ->> 'threads_used')::int AS threads_used;

-- the first call in a backend loads the model; later calls reuse it
SELECT (ouro_model_info() ->> 'loaded_in_process')::bool AS loaded_before,
       (ouro_model_info() ->> 'loads')::int AS loads;
SELECT (ouro_model_info() ->> 'loaded_in_process')::bool AS loaded_before,
       (ouro_model_info() ->> 'loads')::int AS loads,
       ouro_model_info() -> 'config' ->> 'total_ut_steps' AS total_ut_steps;

-- tokenizer
SELECT ouro_tokenize('The capital of France is');
SELECT ouro_token_count('The capital of France is');
SELECT ouro_detokenize(ouro_tokenize('Héllo, wörld! 😀'));
SELECT ouro_detokenize(ARRAY[]::int[]) = '' AS empty_ids;
SELECT ouro_tokenize('') AS no_tokens, ouro_token_count('') AS zero;
SELECT ouro_tokenize(NULL) IS NULL AS n1, ouro_token_count(NULL) IS NULL AS n2, ouro_detokenize(NULL) IS NULL AS n3;

-- generation: defaults, named arguments, NULL options mean their default
SELECT ouro_generate('The capital of France is', max_tokens := 12);
SELECT ouro_generate('The capital of France is', max_tokens := 12)
     = ouro_generate('The capital of France is', NULL, 12, NULL, NULL, NULL, NULL, NULL) AS nulls_are_defaults;
SELECT ouro_generate('The capital of France is', max_tokens := 12)
     = ouro_generate('The capital of France is', max_tokens := 12, max_loops := 4, temperature := 0, seed := 42) AS explicit_defaults;
SELECT ouro_generate('The capital of France is', max_loops := 2, max_tokens := 6);
SELECT ouro_generate('The capital of France is', max_tokens := 6, temperature := 0.8, seed := 7)
     = ouro_generate('The capital of France is', max_tokens := 6, temperature := 0.8, seed := 7) AS same_seed_same_text;
SELECT ouro_generate(NULL) IS NULL AS null_prompt;
SELECT ouro_token_count(ouro_generate('Hi', max_tokens := 3)) <= 4 AS short;
-- ouro.max_tokens and ouro.max_loops are the defaults when the argument is NULL
SET ouro.max_tokens = 5;
SET ouro.max_loops = 2;
SELECT ouro_generate('The capital of France is')
     = ouro_generate('The capital of France is', max_loops := 2, max_tokens := 5) AS settings_apply;
RESET ouro.max_tokens;
RESET ouro.max_loops;
-- stop strings end the text before them
SELECT ouro_generate('The capital of France is', max_tokens := 12, stop := ARRAY['neighb', 'zzz']);

-- the depth each token spent, as a record
SELECT text, n_tokens, exit_steps, mean_depth, stop_reason
FROM ouro_generate_detail('The capital of France is', max_tokens := 6);
SELECT ouro_generate_detail(NULL) IS NULL AS null_prompt;

-- chat
SELECT ouro_chat('What is the capital of France?', max_tokens := 8);
SELECT ouro_chat('What is the capital of France?', system := 'Answer briefly.', max_tokens := 8);
SELECT ouro_chat(NULL) IS NULL AS null_message;

-- classification: always one of the labels; scores sum to 1
SELECT ouro_classify('I loved this film', ARRAY['positive', 'negative']) = ANY (ARRAY['positive', 'negative']) AS is_label;
SELECT round(sum(value::numeric), 6) AS total
FROM jsonb_each_text(ouro_classify_scores('I loved this film', ARRAY['positive', 'negative', 'neutral']));
SELECT ouro_classify_scores('I loved this film', ARRAY['positive', 'negative'], instruction := 'Sentiment?', max_loops := 2) ?& ARRAY['positive', 'negative'] AS keys;
SELECT ouro_classify(NULL, ARRAY['a']) IS NULL AS n1, ouro_classify('x', NULL) IS NULL AS n2,
       ouro_classify_scores(NULL, ARRAY['a']) IS NULL AS n3;

-- depth
SELECT ouro_depth('The capital of France is') BETWEEN 1 AND 4 AS expected_in_range;
SELECT ouro_depth('The capital of France is', exit_threshold := 0.5) BETWEEN 1 AND 4 AS qexit_in_range;
SELECT ouro_depth(NULL) IS NULL AS null_input, ouro_depth('') IS NULL AS no_tokens;
SELECT pos, token, array_length(exit_pdf, 1) AS steps, round((SELECT sum(p) FROM unnest(exit_pdf) p)::numeric, 4) AS pdf_sum,
       expected_depth BETWEEN 1 AND 4 AS expected_ok, exit_step
FROM ouro_token_depths('The capital of France is', exit_threshold := 0.5);
SELECT count(*) FROM ouro_token_depths(NULL);
SELECT round(avg(expected_depth)::numeric, 6) = round(ouro_depth('The capital of France is')::numeric, 6) AS same_mean
FROM ouro_token_depths('The capital of France is');

-- the decode cache: last and avg hold a quarter of per-step's K/V for 4 loop steps
SET ouro.kv_cache = 'per-step';
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS ran;
SELECT (ouro_model_info() ->> 'session_kv_bytes')::float8 AS per_step_bytes \gset
SET ouro.kv_cache = 'last';
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS ran;
SELECT (ouro_model_info() ->> 'session_kv_bytes')::float8 / :per_step_bytes AS last_over_per_step;
SET ouro.kv_cache = 'avg';
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS ran;
SELECT (ouro_model_info() ->> 'session_kv_bytes')::float8 / :per_step_bytes AS avg_over_per_step;
RESET ouro.kv_cache;

-- ouro.kv_type: f16 cache entries hold half the KV bytes of f32 (the generation functions only)
SHOW ouro.kv_type;
SHOW ouro.precision;
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS ran;
SELECT ouro_model_info() ->> 'session_kv_type' AS kv_type, ouro_model_info() ->> 'session_precision' AS precision;
SET ouro.kv_type = 'f16';
SHOW ouro.kv_type;
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS ran;
SELECT (ouro_model_info() ->> 'session_kv_bytes')::float8 / :per_step_bytes AS f16_over_f32,
       ouro_model_info() ->> 'session_kv_type' AS kv_type;
SET ouro.kv_cache = 'last';
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS ran;
SELECT (ouro_model_info() ->> 'session_kv_bytes')::float8 / :per_step_bytes AS last_f16_over_per_step_f32;
RESET ouro.kv_cache;
SELECT ouro_generate_batch(ARRAY['Hi', 'Once upon a time'], max_tokens := 4) =
       ARRAY[ouro_generate('Hi', max_tokens := 4), ouro_generate('Once upon a time', max_tokens := 4)] AS f16_batch_equals_per_row;
RESET ouro.kv_type;
SHOW ouro.kv_type;

-- ouro.precision: bf16 is accepted by the generation functions (approximate: text not compared)
SET ouro.precision = 'bf16';
SHOW ouro.precision;
SELECT ouro_generate('The capital of France is', max_tokens := 4) IS NOT NULL AS generate_ran;
SELECT ouro_model_info() ->> 'session_precision' AS precision;
SELECT array_length(ouro_generate_batch(ARRAY['Hi', 'Once upon a time'], max_tokens := 4), 1) AS batch_items;
SELECT ouro_chat('Hi', max_tokens := 2) IS NOT NULL AS chat_ran;
-- the default, auto: bf16 where the CPU has AVX-512 BF16 dot products and no AMX tiles, exact
-- elsewhere; the session runs what ouro_build_info() says auto is here
RESET ouro.precision;
SHOW ouro.precision;
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS ran;
SELECT ouro_model_info() ->> 'session_precision' = ouro_build_info() ->> 'precision_auto' AS auto_resolved,
       ouro_build_info() ->> 'precision_auto' IN ('bf16', 'exact') AS auto_named;
SET ouro.precision = exact;

-- classification and depth keep the exact path (f32 cache, exact products) under either setting
SELECT ouro_classify_scores('I loved this film', ARRAY['positive', 'negative'])::text AS exact_scores,
       ouro_depth('The capital of France is') AS exact_depth \gset
SET ouro.kv_type = 'f16';
SET ouro.precision = 'bf16';
SELECT ouro_classify_scores('I loved this film', ARRAY['positive', 'negative'])::text = :'exact_scores' AS scores_unchanged;
SELECT ouro_model_info() ->> 'session_kv_type' AS kv_type, ouro_model_info() ->> 'session_precision' AS precision;
SELECT ouro_depth('The capital of France is') = :exact_depth AS depth_unchanged;
RESET ouro.kv_type;
SET ouro.precision = exact;

-- registered models (the path comes from ouro.model_path's folder)
SELECT ouro_register_model('gqa', regexp_replace(current_setting('ouro.model_path'), '[^/]+$', 'tiny-gqa-f32-tied'));
SELECT ouro_register_model('mqa', regexp_replace(current_setting('ouro.model_path'), '[^/]+$', 'tiny-mqa-f16-sharded'));
SELECT name FROM ouro_models ORDER BY name;
SELECT ouro_generate('The capital of France is', max_tokens := 12, model := 'gqa');
SELECT ouro_model_info('gqa') ->> 'name' AS name, ouro_model_info('mqa') -> 'config' ->> 'num_key_value_heads' AS mqa_kv_heads;
SELECT ouro_token_count('The capital of France is', model := 'mqa');
SELECT ouro_unregister_model('mqa'), ouro_unregister_model('mqa');

-- batch enrichment with UPDATE
CREATE TABLE questions (id int PRIMARY KEY, prompt text, answer text, tokens int);
INSERT INTO questions (id, prompt) VALUES (1, 'The capital of France is'), (2, 'Hi'), (3, NULL);
UPDATE questions SET answer = ouro_generate(prompt, max_loops := 4, max_tokens := 4),
                     tokens = ouro_token_count(prompt);
SELECT id, answer, tokens FROM questions ORDER BY id;
SELECT id, ouro_generate(prompt, max_loops := 4, max_tokens := 4) FROM questions ORDER BY id;
