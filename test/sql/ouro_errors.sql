-- ouro_errors.sql -- error cases (codes, messages, details, hints), ouro.on_error, the settings'
-- ranges and the privilege rules.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
-- texts compared here are the exact path's (the default, auto, is bf16 on CPUs without tiles)
SET ouro.precision = exact;
SET ouro.threads = 1;
\set SHOW_CONTEXT never

-- the SQLSTATE each kind of error carries
-- pg.sh puts a copy of tiny-mha-bf16 with a truncated weights file next to the models
SELECT ouro_register_model('corrupt', regexp_replace(current_setting('ouro.model_path'), '[^/]+$', 'corrupt'));
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
SELECT q, pg_temp.sqlstate_of(q) FROM (VALUES
    ('SELECT ouro_generate(''Hi'', max_loops := 0)'),
    ('SELECT ouro_generate(''Hi'', stop := ARRAY[NULL])'),
    ('SELECT ouro_generate(''Hi'', model := ''nope'')'),
    ('SELECT ouro_generate('''')'),
    ('SELECT ouro_detokenize(ARRAY[49152])'),
    ('SET LOCAL ouro.context_length = 16; SELECT ouro_generate(repeat(''word '', 40))'),
    ('SET LOCAL ouro.model_path = ''/nonexistent/model''; SELECT ouro_generate(''Hi'')'),
    ('SET LOCAL ouro.model_path = ''/tmp''; SELECT ouro_generate(''Hi'')'),
    ('SET LOCAL ouro.model_path = ''''; SELECT ouro_generate(''Hi'')'),
    ('SELECT ouro_generate(''Hi'', model := ''corrupt'')'),
    ('SET LOCAL ouro.max_loops = 17')
) AS t(q);

-- arguments out of range
SELECT ouro_generate('Hi', max_loops := 0);
SELECT ouro_generate('Hi', max_loops := 17);
SELECT ouro_generate('Hi', max_tokens := 0);
SELECT ouro_generate('Hi', temperature := -1);
SELECT ouro_generate('Hi', exit_threshold := 1.5);
SELECT ouro_generate('Hi', exit_threshold := 'NaN');
SELECT ouro_generate('Hi', stop := ARRAY['a', NULL]);
SELECT ouro_generate('Hi', stop := ARRAY[]::text[]);
SELECT ouro_classify('x', ARRAY[]::text[]);
SELECT ouro_classify('x', ARRAY['a', NULL]);
SELECT ouro_depth('x', exit_threshold := -0.5);
SELECT ouro_detokenize(ARRAY[1, NULL]);
SELECT ouro_detokenize(ARRAY[49152]);
SELECT ouro_detokenize(ARRAY[-1]);

-- unknown model name
SELECT ouro_generate('Hi', model := 'nope');

-- bad rows: prompt longer than the context, empty prompt
SET ouro.context_length = 16;
SELECT ouro_generate(repeat('word ', 40));
SELECT ouro_depth(repeat('word ', 40));
RESET ouro.context_length;
SELECT ouro_generate('');

-- ouro.on_error = null: a bad row gives NULL with a WARNING, the statement goes on
SET ouro.on_error = 'null';
SET ouro.context_length = 16;
SELECT id, ouro_generate(p, max_tokens := 2) IS NULL AS is_null
FROM (VALUES (1, 'Hi'), (2, repeat('word ', 40)), (3, ''), (4, 'Hi')) AS t(id, p) ORDER BY id;
SELECT ouro_detokenize(ARRAY[49152]) IS NULL AS is_null;
-- argument errors still abort
SELECT ouro_generate('Hi', max_loops := 99);
RESET ouro.context_length;
RESET ouro.on_error;

-- settings and their ranges
SET ouro.max_loops = 17;
SET ouro.max_tokens = 0;
SET ouro.exit_threshold = 2;
SET ouro.context_length = 8;
SET ouro.threads = -1;
SET ouro.on_error = 'ignore';
SET ouro.kv_cache = 'half';
SET ouro.kv_type = 'f8';
SET ouro.kv_type = 'F16x';
SET ouro.precision = 'fast';
SET ouro.precision = 'bfloat16';
SET ouro.depth = 'deep';
SET ouro.model_path = 'relative/path';
SET ouro.no_such_setting = 1;
SELECT name, setting, boot_val, min_val, max_val, enumvals, context FROM pg_settings WHERE name LIKE 'ouro.%' AND name <> 'ouro.model_path' AND name NOT LIKE 'ouro.limit%' ORDER BY name;
-- the ceilings: superuser settings (ouro.limit_memory and ouro.limit_threads default to the machine's)
SELECT name, min_val, max_val, context, name IN ('ouro.limit_memory', 'ouro.limit_threads') OR setting = max_val AS at_default FROM pg_settings WHERE name LIKE 'ouro.limit%' ORDER BY name;
SELECT context FROM pg_settings WHERE name = 'ouro.model_path';

-- features the core does not have yet fail cleanly (or work, once it does)
SET ouro.kv_cache = 'last';
SELECT ouro_generate('Hi', max_tokens := 2) IS NOT NULL AS kv_last_ok;
RESET ouro.kv_cache;
SET ouro.depth = 'full';
SELECT ouro_generate('Hi', max_tokens := 4, exit_threshold := 0.5) IS NOT NULL AS full_depth_threshold_ok;
RESET ouro.depth;

-- models that do not load
SET ouro.model_path = '/nonexistent/model';
SELECT ouro_generate('Hi');
SET ouro.model_path = '/etc/hostname';
SELECT ouro_generate('Hi');
SET ouro.model_path = '/tmp';
SELECT ouro_generate('Hi');
SET ouro.model_path = '';
SELECT ouro_generate('Hi');
RESET ouro.model_path;
SELECT ouro_register_model('bad', 'relative');
SELECT ouro_register_model('bad', '/nonexistent/model');
SELECT ouro_register_model('', '/tmp');
SELECT ouro_register_model(NULL, '/tmp');

-- privileges: an ordinary role cannot choose server paths
CREATE ROLE ouro_user;
GRANT ALL ON FUNCTION ouro_register_model(text, text) TO ouro_user;
SELECT ouro_register_model('mine', regexp_replace(current_setting('ouro.model_path'), '[^/]+$', 'tiny-gqa-f32-tied'));
SET ROLE ouro_user;
SET ouro.model_path = '/tmp';
SELECT ouro_register_model('evil', '/tmp');
SELECT ouro_unregister_model('mine');
SELECT * FROM ouro_models;
-- but it may use the configured and the registered models
SELECT ouro_token_count('The capital of France is');
SELECT ouro_token_count('The capital of France is', model := 'mine');
RESET ROLE;
REVOKE ALL ON FUNCTION ouro_register_model(text, text) FROM ouro_user;
DROP ROLE ouro_user;
