#!/usr/bin/env bash
# The main demo: runs every example (examples/*.c, built into BUILD/bin) on the embedded local runtime.
# An example's arguments, if any, are in examples/<name>.args. Stops at the first failing example.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
for src in examples/*.c; do
  name=$(basename "$src" .c)
  args=()
  [ -f "examples/$name.args" ] && read -r -a args < "examples/$name.args"
  # DRAY_DASHBOARD=PORT make demo: the dashboard example serves on PORT long enough to watch it.
  [ "$name" = dashboard ] && [ -n "${DRAY_DASHBOARD:-}" ] && args+=(--seconds "${DRAY_DASHBOARD_SECONDS:-60}")
  echo "== $name ${args[*]:-}"
  "$build/bin/$name" "${args[@]}"
done
echo "demo: all examples passed"
