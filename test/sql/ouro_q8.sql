-- ouro_q8.sql -- a model converted by `ouro convert` (q8 weights; test/suites/pg.sh writes
-- tiny-mha-bf16 converted next to the other models as tiny-mha-bf16-q8) through every kind of
-- call.  On this model q8 keeps every golden greedy text (measured 5/5 in test_kernels).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;
SELECT ouro_register_model('q8', regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                                'tiny-mha-bf16-q8'));
SELECT ouro_model_info('q8') ->> 'dtype' AS dtype;
CREATE TEMP TABLE q8_cases AS
SELECT c ->> 'name' AS case_name, c ->> 'prompt' AS prompt, c ->> 'greedy_text' AS greedy_text
FROM jsonb_array_elements(pg_read_file(regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                       'tiny-mha-bf16') || '/expected.json')::jsonb -> 'cases') AS c;
SELECT case_name, ouro_generate(prompt, max_tokens := 12, model := 'q8') = greedy_text AS text_matches
FROM q8_cases ORDER BY case_name;
SELECT ouro_generate_batch(array_agg(prompt ORDER BY case_name), max_tokens := 12, model := 'q8')
       = array_agg(greedy_text ORDER BY case_name) AS batch_matches
FROM q8_cases;
SELECT ouro_classify('Is it good?', ARRAY['yes', 'no', 'maybe'], model := 'q8')
       = (SELECT key FROM jsonb_each_text(ouro_classify_scores('Is it good?', ARRAY['yes', 'no', 'maybe'],
                                                                  model := 'q8'))
          ORDER BY value::float8 DESC LIMIT 1) AS classify_is_argmax;
SELECT ouro_depth('The capital of France is', model := 'q8') BETWEEN 1 AND 4 AS depth_in_range;
SELECT ouro_unregister_model('q8');
