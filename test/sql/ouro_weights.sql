-- ouro_weights.sql -- ouro.weights: map (the default) or memory; superuser only.
-- ouro.model_path is set for the test role by test/suites/pg.sh (the tiny-mha-bf16 model).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;

-- the first call loads the library (without shared_preload_libraries the setting exists from then on)
SELECT ouro_model_info() ->> 'weights' AS weights;
SHOW ouro.weights;
CREATE TEMP TABLE mapped AS SELECT ouro_generate('The capital of France is', max_tokens := 12) AS t;
-- a superuser may switch; the cached mapped model is loaded again in memory
SET ouro.weights = memory;
SELECT ouro_model_info() ->> 'weights' AS weights;
SELECT ouro_generate('The capital of France is', max_tokens := 12) = t AS same_text FROM mapped;
SET ouro.weights = disk;
RESET ouro.weights;
SELECT ouro_model_info() ->> 'weights' AS weights;

-- an ordinary role may not
CREATE ROLE ouro_weights_user;
SET ROLE ouro_weights_user;
SET ouro.weights = memory;
RESET ROLE;
DROP ROLE ouro_weights_user;
