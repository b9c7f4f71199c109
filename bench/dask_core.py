"""Dask side of `bench/run core --dask`: the same work as bench_core on Dask's threaded scheduler
(Debian's python3-dask), with smaller N where Dask would take minutes. Prints `dask_<name> value unit`,
each the median of --runs runs."""
import statistics
import sys
import time

import dask
from dask import delayed
from dask.threaded import get as threaded_get

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5


def noop():
    return None


def inc(x):
    return x + 1


def add(*xs):
    return sum(xs)


def empty_tasks(n=20000):
    dsk = {("noop", i): (noop,) for i in range(n)}
    t0 = time.perf_counter()
    threaded_get(dsk, list(dsk.keys()))
    return n / (time.perf_counter() - t0)


def chain_tasks(n=10000):
    dsk = {("c", 0): (inc, 0)}
    for i in range(1, n):
        dsk[("c", i)] = (inc, ("c", i - 1))
    t0 = time.perf_counter()
    out = threaded_get(dsk, ("c", n - 1))
    assert out == n
    return n / (time.perf_counter() - t0)


def latency_us(n=2000):
    t0 = time.perf_counter()
    for _ in range(n):
        delayed(noop)().compute(scheduler="threads")
    return (time.perf_counter() - t0) / n * 1e6


def graph_tasks(leaves=100000, fan=8):
    dsk = {("leaf", i): (inc, i) for i in range(leaves)}
    level = [("leaf", i) for i in range(leaves)]
    depth = 0
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), fan):
            key = ("sum", depth, j // fan)
            dsk[key] = (add, *level[j:j + fan])
            nxt.append(key)
        level = nxt
        depth += 1
    t0 = time.perf_counter()
    out = threaded_get(dsk, level[0])
    assert out == leaves * (leaves - 1) // 2 + leaves
    return len(dsk) / (time.perf_counter() - t0)


def report(name, unit, fn):
    fn()  # warm-up
    print(f"dask_{name} {statistics.median(fn() for _ in range(RUNS)):.6g} {unit}", flush=True)


report("core_empty_tasks_per_s", "tasks/s", empty_tasks)
report("core_chain_tasks_per_s", "tasks/s", chain_tasks)
report("core_submit_get_latency_us", "us", latency_us)
report("core_graph_tasks_per_s", "tasks/s", graph_tasks)
