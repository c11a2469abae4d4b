#!/usr/bin/env bash
# test/installcheck.sh -- `make installcheck`: the pg_regress tests (test/sql, test/expected)
# against a running PostgreSQL server where `make install` was run, PGXS style.
#
# Needs only the server and a superuser role to connect as, chosen by the usual libpq variables
# (PGHOST, PGPORT, PGUSER...).  The library need not be preloaded.  The tests read model files on
# the server, so the server must run on this machine: the models are copied into a temporary
# folder under /tmp (OURO_TEST_MODELS_DIR to choose another one the server can read) and given
# to the tests' sessions as ouro.model_path through PGOPTIONS.  The tests run in a database
# of their own (contrib_regression_ouro), which pg_regress drops and recreates; the results are
# in build/pg_regress/.
#
#   make installcheck
#   PGHOST=/tmp PGPORT=5433 PGUSER=postgres make installcheck
set -u
cd "$(dirname "$0")/.."

if ! out=$(psql -X -At -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user" 2>&1); then
    echo "installcheck: cannot connect to the server: $out" >&2
    echo "installcheck: start it, or point PGHOST/PGPORT/PGUSER at it" >&2
    exit 1
fi
if [ "$out" != t ]; then
    echo "installcheck: the role \"$(psql -X -At -c 'SELECT current_user')\" is not a superuser;" \
         "connect as one (PGUSER=postgres)" >&2
    exit 1
fi

if [ -n "${OURO_TEST_MODELS_DIR:-}" ]; then
    models=$OURO_TEST_MODELS_DIR
else
    models=$(mktemp -d /tmp/ouro-installcheck.XXXXXX)
    chmod 755 "$models"
    trap 'rm -rf "$models"' EXIT
fi
bash test/pg_fixtures.sh "$models" || exit 1

PGOPTIONS="${PGOPTIONS:-} -c ouro.model_path=$models/tiny-mha-bf16" \
    make -C pg_ext installcheck
