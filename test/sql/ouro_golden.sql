-- ouro_golden.sql -- for every case of test/data/models/*/expected.json, ouro_generate(prompt,
-- max_tokens := 12) returns exactly its greedy_text (outputs of the upstream PyTorch model).
-- The files are read from the folder of ouro.model_path (a copy of test/data/models).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;
CREATE TEMP TABLE models AS
SELECT m AS name, regexp_replace(current_setting('ouro.model_path'), '[^/]+$', m) AS path
FROM unnest(ARRAY['tiny-mha-bf16', 'tiny-gqa-f32-tied', 'tiny-mqa-f16-sharded']) AS m;
SELECT ouro_register_model(name, path) FROM models ORDER BY name;
CREATE TEMP TABLE cases AS
SELECT m.name AS model, c ->> 'name' AS case_name, c ->> 'prompt' AS prompt,
       c ->> 'greedy_text' AS greedy_text,
       ARRAY(SELECT jsonb_array_elements_text(c -> 'greedy_new_ids')::int) AS greedy_ids
FROM models m,
     jsonb_array_elements(pg_read_file(m.path || '/expected.json')::jsonb -> 'cases') AS c;
SELECT model, case_name,
       ouro_generate(prompt, max_tokens := 12, model := model) = greedy_text AS text_matches
FROM cases ORDER BY model, case_name;
SELECT count(*) AS cases FROM cases;

-- ouro.kv_type = f16 (16-bit KV cache entries, approximate) keeps every golden greedy text,
-- one call per row and batched.
SET ouro.kv_type = 'f16';
SELECT count(*) AS cases,
       count(*) FILTER (WHERE ouro_generate(prompt, max_tokens := 12, model := model) = greedy_text) AS f16_text_matches
FROM cases;
SELECT model, ouro_generate_batch(array_agg(prompt ORDER BY case_name), max_tokens := 12, model := model)
              = array_agg(greedy_text ORDER BY case_name) AS f16_batch_matches
FROM cases GROUP BY model ORDER BY model;
RESET ouro.kv_type;

-- Adaptive depth and the smaller decode caches (expected_adaptive.json): for every case marked
-- robust, the text of the reference new_ids and the reference exit_steps, in all six modes.
CREATE TEMP TABLE adaptive AS
SELECT m.name AS model, c ->> 'name' AS case_name, mode.key AS mode,
       ARRAY(SELECT jsonb_array_elements_text(mode.value -> 'new_ids')::int) AS new_ids,
       ARRAY(SELECT jsonb_array_elements_text(mode.value -> 'exit_steps')::int) AS exit_steps
FROM models m,
     jsonb_array_elements(pg_read_file(m.path || '/expected_adaptive.json')::jsonb -> 'cases') AS c,
     jsonb_each(c -> 'modes') AS mode
WHERE (mode.value ->> 'robust')::bool;
CREATE TEMP TABLE adaptive_results (mode text, model text, case_name text, text_ok bool, steps_ok bool);
CREATE FUNCTION pg_temp.run_mode(p_mode text, p_threshold float8) RETURNS void LANGUAGE sql AS $$
    INSERT INTO adaptive_results
    SELECT a.mode, a.model, a.case_name, d.text = ouro_detokenize(a.new_ids, a.model),
           d.exit_steps = a.exit_steps
    FROM adaptive a JOIN cases c USING (model, case_name),
         LATERAL ouro_generate_detail(c.prompt, max_tokens := 12, exit_threshold := p_threshold,
                                      model := a.model) AS d
    WHERE a.mode = p_mode;
$$;
SET ouro.depth = 'adaptive';
SET ouro.kv_cache = 'per-step';
SELECT pg_temp.run_mode('full_copy', NULL), pg_temp.run_mode('q0.5_copy', 0.5), pg_temp.run_mode('q0.8_copy', 0.8);
SET ouro.kv_cache = 'last';
SELECT pg_temp.run_mode('full_last', NULL), pg_temp.run_mode('q0.5_last', 0.5);
SET ouro.kv_cache = 'avg';
SELECT pg_temp.run_mode('full_avg', NULL);
RESET ouro.kv_cache;
SELECT mode, count(*) AS robust_cases, count(*) FILTER (WHERE text_ok) AS text_matches,
       count(*) FILTER (WHERE steps_ok) AS exit_steps_match
FROM adaptive_results GROUP BY mode ORDER BY mode;
SELECT count(*) = (SELECT count(*) FROM adaptive) AS every_robust_case_ran FROM adaptive_results;
