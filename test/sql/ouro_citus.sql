-- ouro_citus.sql -- ouro_update_shards where Citus is absent: it is installed with the
-- extension and says clearly that it needs Citus.  test/suites/citus.sh runs it on a cluster.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ouro;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE TABLE citus_absent (id int PRIMARY KEY, prompt text, answer text);
SELECT * FROM ouro_update_shards('citus_absent', 'answer = ouro_generate(prompt)', 'answer IS NULL');
SELECT * FROM ouro_update_shards(NULL, 'answer = NULL');
DROP TABLE citus_absent;
