#!/usr/bin/env bash
# Installs npm puppeteer-core (never a browser: the test drives Debian's /usr/bin/chromium) into
# BUILD/npm-browser, idempotently, and prints the folder. Exits 77 when node/npm or chromium are
# missing. Usage: setup-browser.sh [BUILD_DIR]
set -euo pipefail
build=${1:-${DRAY_BUILD_DIR:-$(dirname "$0")/../../build}}
dir="$build/npm-browser"
pkg=puppeteer-core@24.43.1
ok() { [ -f "$dir/node_modules/puppeteer-core/package.json" ]; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "node/npm not installed" >&2; exit 77; }
[ -x /usr/bin/chromium ] || { echo "/usr/bin/chromium not installed (tools/install-deps.sh)" >&2; exit 77; }
# another build folder of this checkout may have it already (build-asan reuses build's)
shared="$(cd "$(dirname "$0")/../.." && pwd)/build/npm-browser"
if ! ok && [ -f "$shared/node_modules/puppeteer-core/package.json" ]; then
  dir=$shared
fi
if ! ok; then
  mkdir -p "$dir"
  # Two browser tests may start at once (ctest -j2): one installs while the other waits for it.
  exec 9>"$dir.lock"
  flock 9
fi
if ! ok; then
  [ -f "$dir/package.json" ] || echo '{"name":"dray-dashboard-browser","private":true}' > "$dir/package.json"
  (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 timeout 300 npm install --no-audit --no-fund --silent "$pkg" >&2) ||
    { echo "npm install $pkg failed" >&2; exit 1; }
  ok || { echo "npm install did not produce puppeteer-core" >&2; exit 1; }
fi
cd "$dir" && pwd
