#!/usr/bin/env bash
# Dask distributed vs Ray for wwtune's `cluster=`: install size and start-up of a local 2-worker cluster.
# Each engine goes into its own fresh venv (no torch: the engine's own footprint), then a script starts a
# 2-worker cluster on 127.0.0.1, runs one task on each worker, shuts it down; repeated 3 times.
# Usage: nice -n 10 bash benchmarks/bench_engines.sh /tmp/engines   (writes a table on stdout)
set -euo pipefail
ROOT=${1:-/tmp/wwtune-engines}
mkdir -p "$ROOT"
PY=${PY:-python3}
measure() {  # name, pip spec, start-up script
  local name=$1 spec=$2 script=$3 venv="$ROOT/$1"
  rm -rf "$venv"; $PY -m venv "$venv"; "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  local base; base=$(du -sk "$venv" | cut -f1)
  local t0; t0=$(date +%s.%N)
  "$venv/bin/python" -m pip install -q "$spec" >/dev/null 2>&1
  local t1; t1=$(date +%s.%N)
  local size; size=$(( ($(du -sk "$venv" | cut -f1) - base) / 1024 ))
  local ndist; ndist=$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | wc -l)
  local starts=()
  for _ in 1 2 3; do starts+=("$("$venv/bin/python" -c "$script" 2>>"$ROOT/$name.err" || echo failed)"); done
  printf '| %s | %s | %d MB | %d | %.0f s | %s |\n' "$name" "$("$venv/bin/python" -m pip show "${spec%%[=<>]*}" | sed -n 's/^Version: //p')" \
    "$size" "$ndist" "$(echo "$t1 - $t0" | bc)" "${starts[*]}"
}
DASK='
import time
t=time.perf_counter()
from distributed import Client, LocalCluster
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c, Client(c) as cl:
    cl.gather(cl.map(lambda x: x + 1, range(2)))
print(f"{time.perf_counter()-t:.1f}s")
'
RAY='
import time
t=time.perf_counter()
import ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
@ray.remote
def f(x): return x + 1
ray.get([f.remote(i) for i in range(2)])
ray.shutdown()
print(f"{time.perf_counter()-t:.1f}s")
'
echo "| engine | version | venv growth | packages in venv | pip install wall | start 2 workers + 2 tasks + stop (3 runs) |"
echo "|---|---|---|---|---|---|"
measure dask "distributed" "$DASK"
measure ray "ray" "$RAY"
