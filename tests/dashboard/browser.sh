#!/usr/bin/env bash
# The dashboard's browser test: starts the demo (examples/dashboard.c) with a live workload, drives the
# page in headless Debian chromium through puppeteer-core (tests/dashboard/browser.mjs), then opens the
# offline report the demo wrote. Screenshots land in BUILD/dashboard-screens/. Exits 77 (skip) only
# when chromium or node are missing. Usage: browser.sh [BUILD_DIR]
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-${DRAY_BUILD_DIR:-$src/build}}" && pwd)
npm_dir=$("$src/tests/dashboard/setup-browser.sh" "$build")
rc=$?
[ $rc -eq 0 ] || exit $rc
shots="$build/dashboard-screens"
mkdir -p "$shots"
report="$shots/report.html"
rm -f "$report"
out=$(mktemp)
"$build/bin/dashboard" --seconds "${DRAY_BROWSER_SECONDS:-25}" --port 0 --report "$report" >"$out" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null; rm -f "$out"' EXIT
url=""
for _ in $(seq 1 200); do
  url=$(sed -n 's/^dashboard: //p' "$out" | head -1)
  [ -n "$url" ] && break
  kill -0 $demo 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { echo "the demo printed no dashboard URL:"; cat "$out"; exit 1; }
echo "dashboard at $url"
DRAY_NPM_DIR="$npm_dir" timeout 240 node "$src/tests/dashboard/browser.mjs" "$url" "$report" "$shots"
rc=$?
wait $demo
drc=$?
cat "$out"
[ $drc -eq 0 ] || { echo "the demo failed ($drc)"; exit 1; }
exit $rc
