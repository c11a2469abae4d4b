-- ouro_demo_model.sql -- the trained demonstration model (models/ouro-demo; test/suites/pg.sh
-- copies it and its fixed held-out set next to the other models) answers the held-out set of
-- test/data/ouro-demo-heldout.json at least as well as recorded there (min_correct: the
-- accuracy measured when the model was committed, less a margin of 3 cases): ouro_chat for
-- the questions, ouro_classify for the classification cases.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;
SELECT ouro_register_model('demo', regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                                  'ouro-demo'));
CREATE TEMP TABLE demo_set AS
SELECT pg_read_file(regexp_replace(current_setting('ouro.model_path'), '[^/]+$',
                                   'ouro-demo-heldout.json'))::jsonb AS j;
CREATE TEMP TABLE demo_cases AS
SELECT c ->> 'task' AS task, c ->> 'user' AS prompt, c ->> 'answer' AS answer,
       c ->> 'input' AS input, ARRAY(SELECT jsonb_array_elements_text(c -> 'labels')) AS labels
FROM demo_set, jsonb_array_elements(j -> 'cases') AS c;
SELECT count(*) > 90 AS enough_cases, count(*) FILTER (WHERE task = 'classify') > 0 AS has_classify
FROM demo_cases;
CREATE TEMP TABLE demo_answers AS
SELECT task, answer,
       CASE WHEN task = 'classify' THEN ouro_classify(input, labels, model := 'demo')
            ELSE trim(ouro_chat(prompt, max_tokens := 16, model := 'demo')) END AS got
FROM demo_cases;
SELECT count(*) FILTER (WHERE got = answer) >= (SELECT (j ->> 'min_correct')::int FROM demo_set)
       AS at_least_min_correct
FROM demo_answers;
-- the classification cases through ouro_classify are all answered with one of their labels
SELECT bool_and(got IN ('positive', 'negative', 'sports', 'food', 'technology', 'weather'))
       AS labels_only
FROM demo_answers WHERE task = 'classify';
