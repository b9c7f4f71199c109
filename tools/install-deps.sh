#!/usr/bin/env bash
# Installs the Debian packages dray needs to build, test and benchmark. Idempotent: runs
# `apt-get update` and `apt-get install` only when a package is missing. Usage: install-deps.sh [extra...]
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build clang llvm pkg-config
  libuv1-dev libmsgpack-dev libcjson-dev libmicrohttpd-dev libyaml-dev
  libsnappy-dev libzstd-dev zlib1g-dev liblz4-dev libopenblas-dev
  python3-numpy python3-pandas python3-dask python3-distributed
  libtbb-dev g++
  libxgboost-dev # tune: examples/tune_xgboost.c tunes XGBoost through its C API
  wrk                      # HTTP load generator for bench/serve.sh
  openmpi-bin              # cluster: tests/cluster/test_launch.c runs dray programs under mpirun
  iproute2                 # cluster: network-namespace tests (ip netns, veth)
  python3-yaml             # cluster: tests/cluster/test_deploy.c parses deploy/kubernetes/*.yaml
)
# Node.js runs the Parquet tests' independent readers (DuckDB, hyparquet from npm); machines whose image
# ships its own nodejs (with npm) keep it, others get Debian's.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
