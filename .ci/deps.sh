#!/usr/bin/env bash
# .ci/deps.sh -- installs the Debian packages that building and testing ouro need.
# Run as root, or as a user with sudo (it then asks sudo for the install only).
# Safe to run again: when everything is installed it does nothing.
set -euo pipefail
pkgs=(
    build-essential pkg-config      # gcc (with OpenMP), make
    libcjson-dev                    # JSON: config.json, safetensors headers, tokenizer.json
    libutf8proc-dev                 # Unicode categories for the tokenizer's split pattern
    libopenblas-dev                 # BLAS for large matrix products
    libsqlite3-dev sqlite3          # the SQLite extension API and shell
    python3                         # Debian's Python: its sqlite3 module loads extensions
    python3-numpy                   # models/gguf_standin.py (llama.cpp stand-in) and its test
    postgresql postgresql-server-dev-all   # server, PGXS headers, pg_regress, pg_createcluster
    libkrb5-dev                     # gssapi/gssapi.h, which the server headers include (libpq-be.h)
                                    # and which Debian 12's libpq-dev does not depend on
    debhelper dpkg-dev lintian      # make deb: the Debian packages, and their check
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
