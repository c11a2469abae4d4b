#!/usr/bin/env bash
# test/pg_fixtures.sh -- writes the model folders the pg_regress tests (test/sql) read into a
# folder the database server can read.  Used by test/suites/pg.sh and by `make installcheck`.
#
#   bash test/pg_fixtures.sh DIR
#
# DIR/tiny-*                 copies of test/data/models (ouro.model_path is DIR/tiny-mha-bf16;
#                            the tests find the other models next to it)
# DIR/tiny-mha-bf16-q8       tiny-mha-bf16 converted to q8 weights by build/ouro (ouro_q8.sql)
# DIR/tiny-mha-bf16-q4       tiny-mha-bf16 converted to q4 weights (ouro_q4.sql)
# DIR/ouro-demo-q4           models/ouro-demo converted to q4 weights (ouro_q4.sql)
# DIR/corrupt                tiny-mha-bf16 with its weights file cut short (ouro_errors.sql)
# DIR/ouro-demo              the trained demonstration model models/ouro-demo, and
# DIR/ouro-demo-heldout.json its fixed held-out set (ouro_demo_model.sql)
#
# Everything is made readable by every user (the server runs as its own operating system user).
# Exits non-zero, saying why, when a fixture cannot be written.
set -eu
cd "$(dirname "$0")/.."
dir=${1:?usage: pg_fixtures.sh DIR}
mkdir -p "$dir"
cp -r test/data/models/. "$dir/"
if ! build/ouro convert --model test/data/models/tiny-mha-bf16 --out "$dir/tiny-mha-bf16-q8" \
        >"$dir/convert.log" 2>&1; then
    cat "$dir/convert.log" >&2
    echo "pg_fixtures.sh: ouro convert failed (is build/ouro built?)" >&2
    exit 1
fi
for q in "test/data/models/tiny-mha-bf16 $dir/tiny-mha-bf16-q4" "models/ouro-demo $dir/ouro-demo-q4"; do
    set -- $q
    if ! build/ouro convert --model "$1" --out "$2" --type q4 >"$dir/convert.log" 2>&1; then
        cat "$dir/convert.log" >&2
        echo "pg_fixtures.sh: ouro convert --type q4 failed" >&2
        exit 1
    fi
done
rm -f "$dir/convert.log"
cp -r test/data/models/tiny-mha-bf16 "$dir/corrupt"
truncate -s 4096 "$dir/corrupt/model.safetensors"
cp -r models/ouro-demo "$dir/ouro-demo"
cp test/data/ouro-demo-heldout.json "$dir/ouro-demo-heldout.json"
chmod -R a+rX "$dir"
