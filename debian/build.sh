#!/usr/bin/env bash
# debian/build.sh -- `make deb`: builds the Debian packages into build/deb/ from a copy of the
# tree (the files git tracks, and new files it does not ignore), so that the build never
# touches the working tree's own build/ folder; then runs lintian on them when it is installed.
#
#   bash debian/build.sh          build/deb/*.deb, and build/deb/lintian.txt
# JOBS (default 2) is the number of parallel compile jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(dpkg-parsechangelog -S Version)
upstream=${version%%-*}
control=$(sed -nE "s/^default_version *= *'([^']+)'.*/\1/p" pg_ext/ouro.control)
if [ "$upstream" != "$control" ]; then
    echo "debian/changelog is at $version but pg_ext/ouro.control at $control: add a changelog entry" >&2
    exit 1
fi
out=$PWD/build/deb
rm -rf "$out"
src=$out/src/ouro-$upstream
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 -r -I{} sh -c '[ -e "$1" ] && printf "%s\0" "$1" || true' _ {} |
        tar -cf - --null -T - | tar -xf - -C "$src"
else
    tar -cf - --exclude=./build --exclude=./build-asan --exclude=./.git . | tar -xf - -C "$src"
fi
(
    cd "$src"
    # debian/control for the server versions this machine supports (debian/pgversions)
    pg_buildext updatecontrol >/dev/null
    DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} noddebs" dpkg-buildpackage -b -us -uc -j"${JOBS:-2}"
) >"$out/build.log" 2>&1 || { tail -40 "$out/build.log" >&2; echo "dpkg-buildpackage failed: $out/build.log" >&2; exit 1; }
mv "$out"/src/*.deb "$out"/
rm -rf "$out/src"
ls -1 "$out"/*.deb
if command -v lintian >/dev/null 2>&1; then
    lintian --info "$out"/*.deb >"$out/lintian.txt" 2>&1 || true
    echo "lintian: $(grep -c '^[EW]:' "$out/lintian.txt" || true) errors and warnings (build/deb/lintian.txt)"
    cat "$out/lintian.txt"
fi
