#!/usr/bin/env bash
# Serve benchmarks: wrk on 127.0.0.1 against a bare libmicrohttpd server and a bare epoll server
# answering a fixed string (the anchors, measured in the same run), a no-op deployment and the logistic regression model (1 and 2
# replicas, replicas as actors; plus the direct mode), and the model with dynamic batching. Prints
# `name value unit` lines, each the median of RUNS runs. Usage: bench/run serve [--runs N]
# [--seconds S] [--connections C]. Needs build/bin (make build) and wrk (tools/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3; secs=3; conns=32
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    *) echo "usage: bench/run serve [--runs N] [--seconds S] [--connections C]" >&2; exit 2 ;;
  esac
done
bin=${BUILD:-build}/bin
command -v wrk >/dev/null || { echo "bench/serve.sh: wrk is missing: tools/install-deps.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin/bench_serve" train "$tmp/model.txt"
cat > "$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"features": [0.5, -0.25, 0.75, 0.125]}'
wrk.headers["Content-Type"] = "application/json"
EOF

# to_ms VALUE-WITH-UNIT: wrk's "350.00us" / "1.2ms" / "1.01s" in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# one_run NAME SERVER-COMMAND... : starts the server, runs wrk, appends "rps p50 p99 overhead cpu"
# to NAME (cpu: the server process's CPU time per request, user + system, in us: unlike req/s it
# hardly depends on what else runs on the machine). CONNS overrides the connection count.
one_run() {
  local name=$1; shift
  local c=${CONNS:-$conns}
  local script=""
  [[ $name == *model* ]] && script="-s $tmp/post.lua"
  # Empty the file first: the background job truncates it only once it runs, and until then the
  # loop below would read the previous server's port.
  : > "$tmp/server.out"
  "$@" > "$tmp/server.out" &
  local pid=$!
  for _ in $(seq 600); do grep -q '^port' "$tmp/server.out" 2>/dev/null && break; sleep 0.05; done
  local port; port=$(awk '/^port/ {print $2}' "$tmp/server.out")
  if [ -z "$port" ]; then
    echo "bench/serve.sh: $name: the server did not start" >&2; kill "$pid" 2>/dev/null; exit 1
  fi
  local cpu0 cpu1
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  # shellcheck disable=SC2086
  wrk -t1 -c"$c" -d"${secs}s" --latency $script "http://127.0.0.1:$port/" > "$tmp/wrk.out"
  cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"
  wait "$pid"
  local rps p50 p99 over
  rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk.out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  over=$(awk '/^requests/ {printf "%.3f", $4 - $6}' "$tmp/server.out")
  if grep -q "Non-2xx" "$tmp/wrk.out"; then
    echo "bench/serve.sh: $name: non-2xx answers: $(grep Non-2xx "$tmp/wrk.out")" >&2; exit 1
  fi
  local n tck cpu
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  tck=$(getconf CLK_TCK)
  cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" -v t="$tck" 'BEGIN {printf "%.1f", (b - a) / t * 1e6 / n}')
  echo "$rps $p50 $p99 ${over:-0} $cpu" >> "$tmp/$name"
}

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
col() { awk -v c="$2" '{print $c}' "$tmp/$1" | median; }

for _ in $(seq "$runs"); do
  one_run bare "$bin/bench_serve_bare" 120 2
  one_run bare8k "$bin/bench_serve_bare" 120 2 8192
  one_run bareep "$bin/bench_serve_epoll" 120 2
  one_run noop "$bin/bench_serve" noop 1 120 "$tmp/model.txt" actors
  one_run noop2 "$bin/bench_serve" noop 2 120 "$tmp/model.txt" actors
  BENCH_SERVE_ACTOR_CALLS=1 one_run noopac "$bin/bench_serve" noop 1 120 "$tmp/model.txt" actors
  one_run noopd "$bin/bench_serve" noop 1 120 "$tmp/model.txt" direct
  one_run model "$bin/bench_serve" model 1 120 "$tmp/model.txt" actors
  one_run model2 "$bin/bench_serve" model 2 120 "$tmp/model.txt" actors
  one_run modeld "$bin/bench_serve" model 1 120 "$tmp/model.txt" direct
  one_run modelb "$bin/bench_serve" batched 1 120 "$tmp/model.txt" actors
  # One connection: no queueing inside the server, so server time - model time is the overhead.
  CONNS=1 one_run model1c "$bin/bench_serve" model 1 120 "$tmp/model.txt" actors
  CONNS=1 BENCH_SERVE_ACTOR_CALLS=1 one_run modelh1c "$bin/bench_serve" model 1 120 "$tmp/model.txt" actors
  CONNS=1 one_run modeld1c "$bin/bench_serve" model 1 120 "$tmp/model.txt" direct
done

echo "serve_bare_mhd_req_per_s $(col bare 1) req/s"
echo "serve_bare_mhd_p99_ms $(col bare 3) ms"
echo "serve_bare_mhd_8k_pool_req_per_s $(col bare8k 1) req/s"
echo "serve_bare_epoll_req_per_s $(col bareep 1) req/s"
echo "serve_bare_epoll_p99_ms $(col bareep 3) ms"
echo "serve_bare_epoll_cpu_us_per_req $(col bareep 5) us"
echo "serve_noop_req_per_s $(col noop 1) req/s"
echo "serve_bare_mhd_cpu_us_per_req $(col bare 5) us"
echo "serve_noop_p50_ms $(col noop 2) ms"
echo "serve_noop_p99_ms $(col noop 3) ms"
echo "serve_noop_2_replicas_req_per_s $(col noop2 1) req/s"
echo "serve_noop_direct_req_per_s $(col noopd 1) req/s"
echo "serve_noop_actor_calls_req_per_s $(col noopac 1) req/s (through the mailbox, a hop)"
echo "serve_noop_actor_calls_p99_ms $(col noopac 3) ms"
echo "serve_noop_actor_calls_cpu_us_per_req $(col noopac 5) us"
echo "serve_noop_direct_p99_ms $(col noopd 3) ms"
echo "serve_noop_cpu_us_per_req $(col noop 5) us"
echo "serve_noop_direct_cpu_us_per_req $(col noopd 5) us"
echo "serve_model_req_per_s $(col model 1) req/s"
echo "serve_model_p99_ms $(col model 3) ms"
echo "serve_model_2_replicas_req_per_s $(col model2 1) req/s"
echo "serve_model_direct_req_per_s $(col modeld 1) req/s"
echo "serve_batched_model_req_per_s $(col modelb 1) req/s"
echo "serve_overhead_us $(col model1c 4) us"
echo "serve_overhead_direct_us $(col modeld1c 4) us"
echo "serve_overhead_actor_calls_us $(col modelh1c 4) us (actor_calls: through the mailbox, a hop)"
echo "serve_server_time_c${conns}_us $(col model 4) us (incl. queueing behind the replica)"
echo "anchor_ray_serve_req_per_s 3500 req/s (published: 3-4k on 8 cores, 8 no-op replicas)"
echo "anchor_ray_serve_overhead_us 1500 us (published: 1-2 ms)"
