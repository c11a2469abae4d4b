#!/usr/bin/env bash
# test/suites/demo_model.sh -- the trained demonstration model (models/ouro-demo):
# exactness against the training program's forward, and its held-out accuracy
# through the tool and SQLite (PostgreSQL: test/sql/ouro_demo_model.sql).
# Uses Debian's /usr/bin/python3 (its sqlite3 module loads extensions); no PyTorch.
set -u
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 test/demo_model/test_demo_model.py
