"""Dask side of bench/array.sh: the same workloads with dask.array on the threaded scheduler
(2 threads, like dray's 2 workers). Usage: array_dask.py REPS [seed|elementwise|matmul ...] (all by
default). Prints `name value unit` lines, medians of REPS runs."""
import statistics
import sys
import time

import dask
import dask.array as da

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
modes = sys.argv[2:] or ["seed", "elementwise", "matmul"]
dask.config.set(scheduler="threads", num_workers=2)


def timed(fn):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


if "seed" in modes:
    def seed_fn():
        return da.random.random((10000, 10000), chunks=(1000, 1000)).mean(axis=0).compute()
    seed = timed(seed_fn)
    print(f"dask_array_random_mean_s {seed:.4f} s")
    cpu = []
    for _ in range(reps):
        c0 = time.process_time()  # all threads of the process, like getrusage
        seed_fn()
        cpu.append(time.process_time() - c0)
    print(f"dask_array_random_mean_cpu_s {statistics.median(cpu):.4f} s")

if "elementwise" in modes:
    n, ch = 100_000_000, 1_000_000
    x = da.random.random(n, chunks=ch).persist()
    y = da.random.random(n, chunks=ch).persist()
    ew = timed(lambda: ((x * 2 + y) / 3).persist())
    print(f"dask_array_elementwise_s {ew:.4f} s")
    print(f"dask_array_elementwise_gbps {3 * 8 * n / ew / 1e9:.2f} GB/s")
    del x, y

if "matmul" in modes:
    m = 4000
    a = da.random.random((m, m), chunks=(1000, 1000)).persist()
    b = da.random.random((m, m), chunks=(1000, 1000)).persist()
    mm = timed(lambda: (a @ b).persist())
    print(f"dask_array_matmul_gflops {2 * m ** 3 / mm / 1e9:.2f} GFLOP/s")
