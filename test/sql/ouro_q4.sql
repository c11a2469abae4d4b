-- ouro_q4.sql -- models converted by `ouro convert --type q4` (4-bit weights; test/pg_fixtures.sh
-- writes tiny-mha-bf16-q4 and ouro-demo-q4 next to the other models) through every kind of call.
-- 4-bit weights change most greedy texts of the tiny random model (test_kernels measures 1 of 5
-- the reference's), so its calls are held to each other and to that figure; the trained
-- demonstration model in q4 answers its held-out set at least 86 of 114 right (measured 89
-- when written, as the bf16 model; the same margin of 3 as ouro_demo_model.sql).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;
SELECT ouro_register_model('q4', regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                                'tiny-mha-bf16-q4'));
SELECT ouro_model_info('q4') ->> 'dtype' AS dtype;
CREATE TEMP TABLE q4_cases AS
SELECT c ->> 'name' AS case_name, c ->> 'prompt' AS prompt, c ->> 'greedy_text' AS greedy_text
FROM jsonb_array_elements(pg_read_file(regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                       'tiny-mha-bf16') || '/expected.json')::jsonb -> 'cases') AS c;
CREATE TEMP TABLE q4_texts AS
SELECT case_name, greedy_text, ouro_generate(prompt, max_tokens := 12, model := 'q4') AS got
FROM q4_cases;
SELECT count(*) FILTER (WHERE got = greedy_text) >= 1 AS one_greedy_text_kept FROM q4_texts;
SELECT ouro_generate_batch(array_agg(prompt ORDER BY case_name), max_tokens := 12, model := 'q4')
       = (SELECT array_agg(got ORDER BY case_name) FROM q4_texts) AS batch_equals_per_row
FROM q4_cases;
SELECT ouro_classify('Is it good?', ARRAY['yes', 'no', 'maybe'], model := 'q4')
       = (SELECT key FROM jsonb_each_text(ouro_classify_scores('Is it good?', ARRAY['yes', 'no', 'maybe'],
                                                                  model := 'q4'))
          ORDER BY value::float8 DESC LIMIT 1) AS classify_is_argmax;
SELECT ouro_depth('The capital of France is', model := 'q4') BETWEEN 1 AND 4 AS depth_in_range;
SELECT ouro_unregister_model('q4');
-- the trained demonstration model in q4
SELECT ouro_register_model('demo_q4', regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                                     'ouro-demo-q4'));
SELECT ouro_model_info('demo_q4') ->> 'dtype' AS dtype;
CREATE TEMP TABLE demo_q4_answers AS
SELECT c ->> 'answer' AS answer,
       CASE WHEN c ->> 'task' = 'classify'
            THEN ouro_classify(c ->> 'input', ARRAY(SELECT jsonb_array_elements_text(c -> 'labels')),
                               model := 'demo_q4')
            ELSE trim(ouro_chat(c ->> 'user', max_tokens := 16, model := 'demo_q4')) END AS got
FROM jsonb_array_elements(pg_read_file(regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                       'ouro-demo-heldout.json'))::jsonb -> 'cases') AS c;
SELECT count(*) AS cases, count(*) FILTER (WHERE got = answer) >= 86 AS at_least_86_right
FROM demo_q4_answers;
SELECT ouro_unregister_model('demo_q4');
