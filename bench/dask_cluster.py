"""Dask side of `bench/run cluster --dask`: the same work on dask.distributed (LocalCluster with 2 worker
processes, 1 thread each), with smaller counts where Dask would take minutes. Prints
`dask_cluster_<name> value unit`, each the median of --runs runs."""
import statistics
import sys
import time

from distributed import Client, LocalCluster

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""


def noop(i):
    return None


def inc(x):
    return x + 1


def zeros(n):
    # b"\0" * n fills the buffer (memset) like dray's bc_zeros; bytes(n) would hand out untouched
    # zero pages (calloc) and skip the page faults the dray side pays.
    return b"\0" * n


class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


def actor_calls(client, n=2000):
    counter = client.submit(Counter, actor=True).result()
    t0 = time.perf_counter()
    futs = [counter.incr() for _ in range(n)]
    out = [f.result() for f in futs]
    t = time.perf_counter() - t0
    # Dask does not keep the order of one client's actor calls; every call must have run once.
    assert sorted(out) == list(range(1, n + 1))
    return n / t


def empty_tasks(client, n=5000):
    t0 = time.perf_counter()
    futs = client.map(noop, range(n), pure=False)
    client.gather(futs)
    return n / (time.perf_counter() - t0)


def latency_us(client, n=300):
    t0 = time.perf_counter()
    for i in range(n):
        assert client.submit(inc, i, pure=False).result() == i + 1
    return (time.perf_counter() - t0) / n * 1e6


def nbytes_of(b):
    return len(b)


def put_get_gbps(client, nbytes=800 << 20):
    """Made on worker 0, read by a task pinned to worker 1: a worker-to-worker transfer."""
    w0, w1 = sorted(client.scheduler_info()["workers"])
    t0 = time.perf_counter()
    b = client.submit(zeros, nbytes, pure=False, workers=[w0])
    n = client.submit(nbytes_of, b, pure=False, workers=[w1]).result()
    t = time.perf_counter() - t0
    assert n == nbytes
    del b
    return nbytes / t / 1e9


def driver_get_gbps(client, nbytes=800 << 20):
    """Made on a worker, read by the client."""
    t0 = time.perf_counter()
    b = client.submit(zeros, nbytes, pure=False).result()
    t = time.perf_counter() - t0
    assert len(b) == nbytes
    return nbytes / t / 1e9


def array_random_mean_s(client):
    import dask.array as da
    t0 = time.perf_counter()
    m = da.random.random((10000, 10000), chunks=(1000, 1000)).mean(axis=0).compute()
    t = time.perf_counter() - t0
    assert m.shape == (10000,) and abs(m.mean() - 0.5) < 2e-4
    return t


def main():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for name, fn, unit in (("cluster_empty_tasks_per_s", empty_tasks, "tasks/s"),
                               ("cluster_submit_get_latency_us", latency_us, "us"),
                               ("cluster_actor_calls_per_s", actor_calls, "calls/s"),
                               ("cluster_put_get_gbps", put_get_gbps, "GB/s"),
                               ("cluster_driver_get_gbps", driver_get_gbps, "GB/s"),
                               ("cluster_array_random_mean_s", array_random_mean_s, "s")):
            if ONLY and not any(k in name for k in ONLY.split(",")):
                continue
            vals = [fn(client) for _ in range(RUNS)]
            fmt = "%.2f" if unit == "GB/s" else "%.1f" if unit == "us" else \
                "%.3f" if unit == "s" else "%.0f"
            print(("dask_%s " + fmt + " %s") % (name, statistics.median(vals), unit), flush=True)


if __name__ == "__main__":
    main()
