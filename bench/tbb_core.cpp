// oneTBB side of `bench/run core --tbb`: 1,000,000 empty tasks spawned from one thread with
// tbb::task_group, then waited, and a fork-join tree reduction of 1,000,000 leaves. Prints
// `tbb_<name> value unit`, each the median of --runs runs.
#include <tbb/task_group.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static double empty_tasks()
{
    const int N = 1000000;
    tbb::task_group g;
    double t0 = now();
    for (int i = 0; i < N; i++)
        g.run([] {});
    g.wait();
    return N / (now() - t0);
}

static long tree(long lo, long hi)
{
    if (hi - lo == 1)
        return lo + 1;
    long mid = (lo + hi) / 2, a = 0, b = 0;
    tbb::task_group g;
    g.run([&] { a = tree(lo, mid); });
    b = tree(mid, hi);
    g.wait();
    return a + b;
}

static double graph_tasks()
{
    const long LEAVES = 1000000;
    double t0 = now();
    long s = tree(0, LEAVES);
    double t = now() - t0;
    if (s != LEAVES * (LEAVES - 1) / 2 + LEAVES)
        std::abort();
    return (2 * LEAVES - 1) / t;
}

static void report(const char *name, const char *unit, double (*fn)(), int runs)
{
    std::vector<double> v;
    fn();
    for (int i = 0; i < runs; i++)
        v.push_back(fn());
    std::sort(v.begin(), v.end());
    std::printf("tbb_%s %.6g %s\n", name, v[v.size() / 2], unit);
    std::fflush(stdout);
}

int main(int argc, char **argv)
{
    int runs = 5;
    for (int i = 1; i + 1 < argc; i++)
        if (!std::strcmp(argv[i], "--runs"))
            runs = std::atoi(argv[i + 1]);
    report("core_empty_tasks_per_s", "tasks/s", empty_tasks, runs);
    report("core_graph_tasks_per_s", "tasks/s", graph_tasks, runs);
    return 0;
}
