#!/usr/bin/env bash
# Installs the npm test oracles of the parquet module (@duckdb/node-api, hyparquet, hyparquet-compressors)
# into BUILD/npm, idempotently. Prints the folder on success; exits 77 (skip) when npm or the registry
# is unreachable. Usage: setup-oracles.sh [BUILD_DIR]
set -euo pipefail
build=${1:-${DRAY_BUILD_DIR:-$(dirname "$0")/../../build}}
dir="$build/npm"
pkgs=(@duckdb/node-api@1.5.6-r.1 hyparquet@1.33.0 hyparquet-compressors@1.1.2)
ok() {
  [ -f "$dir/node_modules/@duckdb/node-api/package.json" ] &&
    [ -f "$dir/node_modules/hyparquet/package.json" ] &&
    [ -f "$dir/node_modules/hyparquet-compressors/package.json" ]
}
# another build folder of this checkout may have them already (build-asan reuses build's)
shared="$(cd "$(dirname "$0")/../.." && pwd)/build/npm"
if ! ok && [ -d "$shared/node_modules/@duckdb/node-api" ] && [ -d "$shared/node_modules/hyparquet-compressors" ]; then
  dir=$shared
fi
if ! ok; then
  command -v node >/dev/null && command -v npm >/dev/null || { echo "node/npm not installed" >&2; exit 77; }
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name":"dray-parquet-oracles","private":true}' > "$dir/package.json"
  if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --silent "${pkgs[@]}" >&2); then
    echo "npm registry unreachable: cannot install ${pkgs[*]}" >&2
    exit 77
  fi
  ok || { echo "npm install did not produce the oracle packages" >&2; exit 77; }
fi
cd "$dir" && pwd
