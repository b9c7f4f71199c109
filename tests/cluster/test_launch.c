/* Scale-out under existing engines: the launcher variables are read right (OpenMPI, MPICH, Slurm),
 * and real runs under Debian's mpirun and under deploy/slurm/dray.sbatch (with a stand-in srun) make
 * rank 0 the driver and the other ranks worker nodes that run the tasks and exit cleanly. The mpirun
 * tests skip (exit 0, SKIP printed) only when mpirun is not installed. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/launch.h"
#include "dray/core.h"
#include "test.h"

DRAY_FUNCTION(ln_pid_square)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    dray_value items[2] = {dray_int(getpid()), dray_int(args[0].u.i * args[0].u.i)};
    return dray_list_create(items, 2, result);
}

static dray_status acc_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    (void)ctx, (void)a, (void)n;
    int64_t *s = calloc(1, sizeof(int64_t));
    if (!s)
        return DRAY_ENOMEM;
    *state = s;
    return DRAY_OK;
}
static void acc_free(void *s)
{
    free(s);
}
static dray_status acc_add(dray_ctx *ctx, void *s, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)n;
    *(int64_t *)s += a[0].u.i;
    *r = dray_int(*(int64_t *)s);
    return DRAY_OK;
}
static dray_status acc_pid(dray_ctx *ctx, void *s, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)s, (void)a, (void)n;
    *r = dray_int(getpid());
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(LnAcc, acc_init, acc_free, {"add", acc_add}, {"pid", acc_pid})

static const char *launch_vars[] = {
    "DRAY_LAUNCH", "DRAY_LAUNCH_PORT", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_MCA_orte_num_nodes", "OMPI_MCA_ess_base_jobid",
    "PMIX_NAMESPACE", "OMPI_MCA_orte_ess_jobid", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS",
    "PMI_KVSNAME", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_ID",
    "SLURM_JOB_ID", "SLURM_STEP_NUM_NODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES",
    "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST", NULL};

static void clear_launch_env(void)
{
    for (int i = 0; launch_vars[i]; i++)
        unsetenv(launch_vars[i]);
}

static void host_is(const char *list, const char *want)
{
    char out[64];
    ASSERT_OK(dray__slurm_first_host(list, out, sizeof out));
    ASSERT_STREQ(out, want);
}

TEST(slurm_host_lists)
{
    host_is("node07", "node07");
    host_is("node[07-09,12],gpu1", "node07");
    host_is("c[3]", "c3");
    host_is("rack[1-2]-n,x", "rack1-n");
    host_is("gpu1,node[1-3]", "gpu1");
    host_is("a[010,2]", "a010");
    const char *bad[] = {"", "[1-2]", "node[", "node[x]", "node[1-2", "a[1-2]b[3-4]", ",a"};
    char out[64];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_STATUS(dray__slurm_first_host(bad[i], out, sizeof out), DRAY_EINVAL);
        ASSERT_CONTAINS(dray_last_error(), "Slurm node list");
    }
    ASSERT_STATUS(dray__slurm_first_host("averyveryverylonghostname", out, 8), DRAY_EINVAL);
}

TEST(launcher_variables_are_read)
{
    dray__launch_info in;
    clear_launch_env();
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_TRUE(in.engine == NULL);
    /* OpenMPI, one host. */
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    setenv("OMPI_MCA_ess_base_jobid", "698023937", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_STREQ(in.engine, "openmpi");
    ASSERT_EQ(in.rank, 2);
    ASSERT_EQ(in.size, 4);
    ASSERT_EQ(in.nhosts, 1);
    ASSERT_STREQ(in.key, "ompi-698023937");
    /* Several hosts; a key from PMIx with characters a file name cannot take. */
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    unsetenv("OMPI_MCA_ess_base_jobid");
    setenv("PMIX_NAMESPACE", "prterun-h/1@1", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_EQ(in.nhosts, 0);
    ASSERT_STREQ(in.key, "ompi-prterun-h_1_1");
    setenv("OMPI_MCA_orte_num_nodes", "2", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_EQ(in.nhosts, 2);
    /* Errors name the variable; a rank beyond the size is refused; one rank or DRAY_LAUNCH=0 is no
     * launch at all. */
    setenv("OMPI_COMM_WORLD_SIZE", "four", 1);
    ASSERT_STATUS(dray__launch_detect(&in), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "OMPI_COMM_WORLD_SIZE='four'");
    ASSERT_TRUE(in.engine == NULL);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    ASSERT_STATUS(dray__launch_detect(&in), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "rank 2 is not below the job size 2");
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_TRUE(in.engine == NULL);
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    setenv("DRAY_LAUNCH", "off", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_TRUE(in.engine == NULL);
    clear_launch_env();
    /* MPICH (Hydra): the key falls back to the launcher's PID (our parent). */
    setenv("PMI_RANK", "1", 1);
    setenv("PMI_SIZE", "3", 1);
    setenv("MPI_LOCALNRANKS", "3", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_STREQ(in.engine, "mpich");
    ASSERT_EQ(in.rank, 1);
    ASSERT_EQ(in.size, 3);
    ASSERT_EQ(in.nhosts, 1);
    char want[64];
    snprintf(want, sizeof want, "ppid-%d", (int)getppid());
    ASSERT_STREQ(in.key, want);
    clear_launch_env();
    /* Slurm: a batch script itself (no step) is not a launch; an srun step is. */
    setenv("SLURM_PROCID", "0", 1);
    setenv("SLURM_NTASKS", "4", 1);
    setenv("SLURM_JOB_ID", "77", 1);
    setenv("SLURM_JOB_NODELIST", "c[10-11]", 1);
    setenv("SLURM_JOB_NUM_NODES", "2", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_TRUE(in.engine == NULL);
    setenv("SLURM_PROCID", "3", 1);
    setenv("SLURM_STEP_ID", "2", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_STREQ(in.engine, "slurm");
    ASSERT_EQ(in.rank, 3);
    ASSERT_EQ(in.size, 4);
    ASSERT_EQ(in.nhosts, 2);
    ASSERT_STREQ(in.key, "slurm-77.2");
    ASSERT_STREQ(in.first_host, "c10");
    setenv("SLURM_STEP_NUM_TASKS", "8", 1);
    setenv("SLURM_STEP_NUM_NODES", "1", 1);
    setenv("SLURM_STEP_NODELIST", "d5", 1);
    ASSERT_OK(dray__launch_detect(&in));
    ASSERT_EQ(in.size, 8);
    ASSERT_EQ(in.nhosts, 1);
    ASSERT_STREQ(in.first_host, "d5");
    setenv("SLURM_STEP_NODELIST", "d[", 1);
    ASSERT_STATUS(dray__launch_detect(&in), DRAY_EINVAL);
    clear_launch_env();
    /* The derived port: stable per job, in range; DRAY_LAUNCH_PORT overrides. */
    int p = dray__launch_port("slurm-77.2");
    ASSERT_GE(p, 20000);
    ASSERT_LT(p, 40000);
    ASSERT_EQ(dray__launch_port("slurm-77.2"), p);
    ASSERT_NE(dray__launch_port("slurm-78.2"), p);
    setenv("DRAY_LAUNCH_PORT", "4242", 1);
    ASSERT_EQ(dray__launch_port("slurm-77.2"), 4242);
    setenv("DRAY_LAUNCH_PORT", "70000", 1);
    ASSERT_EQ(dray__launch_port("slurm-77.2"), -1);
    clear_launch_env();
}

/* Rank 0 refuses a launch directory another user could write to (the secret goes there), and a
 * launch whose worker ranks never come times out with the count. */
TEST(launch_refuses_unsafe_dir_and_times_out)
{
    clear_launch_env();
    char dir[] = "/tmp/dray-lnunsafe-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_EQ(chmod(dir, 0777), 0);
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    char key[64];
    snprintf(key, sizeof key, "lntest%d", (int)getpid());
    setenv("OMPI_MCA_ess_base_jobid", key, 1);
    setenv("DRAY_LAUNCH_DIR", dir, 1);
    dray_runtime *rt = NULL;
    ASSERT_STATUS(dray_init(NULL, &rt), DRAY_EPERM);
    ASSERT_CONTAINS(dray_last_error(), "writable by other users");
    ASSERT_EQ(chmod(dir, 0700), 0);
    /* No worker rank ever joins: a bounded wait, an error naming the count, the head stopped. */
    setenv("DRAY_LAUNCH_TIMEOUT_MS", "600", 1);
    ASSERT_STATUS(dray_init(NULL, &rt), DRAY_ETIMEDOUT);
    ASSERT_CONTAINS(dray_last_error(), "0 of 1 worker ranks joined");
    unsetenv("DRAY_LAUNCH_TIMEOUT_MS");
    unsetenv("DRAY_LAUNCH_DIR");
    unsetenv("DRAY_CLUSTER_DIR");
    clear_launch_env();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

/* The program every rank runs (mpirun/srun start it with this test's name). Under a launcher rank 0
 * gets here as the driver: tasks and an actor run on the other ranks only, with the right results;
 * alone it runs locally. */
TEST(launch_rank_main)
{
    dray__launch_info in;
    ASSERT_OK(dray__launch_detect(&in));
    int workers = in.engine ? in.size - 1 : 0;
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    /* Only rank 0 returns from dray_init. */
    ASSERT_TRUE(!in.engine || in.rank == 0);
    enum { N = 400 };
    dray_ref *refs[N];
    for (int i = 0; i < N; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_submit(rt, "ln_pid_square", &a, 1, NULL, &refs[i]));
    }
    int64_t pids[N], npids = 0, sum = 0, want = 0;
    for (int i = 0; i < N; i++) {
        dray_value v;
        ASSERT_OK(dray_get(rt, refs[i], 30000, &v));
        int64_t pid = dray_list_get(&v, 0)->u.i;
        sum += dray_list_get(&v, 1)->u.i;
        want += (int64_t)i * i;
        dray_value_release(&v);
        dray_ref_release(refs[i]);
        if (workers)
            ASSERT_NE(pid, getpid());
        else
            ASSERT_EQ(pid, getpid());
        bool seen = false;
        for (int k = 0; k < npids; k++)
            seen |= pids[k] == pid;
        if (!seen)
            pids[npids++] = pid;
    }
    ASSERT_EQ(sum, want);
    ASSERT_EQ(npids, workers ? workers : 1);
    /* An actor on one of the ranks: calls in order. */
    dray_actor *a;
    ASSERT_OK(dray_actor_create(rt, "LnAcc", NULL, 0, NULL, &a));
    dray_ref *calls[100];
    for (int i = 0; i < 100; i++) {
        dray_value x = dray_int(i);
        ASSERT_OK(dray_actor_call(rt, a, "add", &x, 1, &calls[i]));
    }
    int64_t acc = 0;
    for (int i = 0; i < 100; i++) {
        dray_value v;
        acc += i;
        ASSERT_OK(dray_get(rt, calls[i], 30000, &v));
        ASSERT_EQ(v.u.i, acc);
        dray_ref_release(calls[i]);
    }
    dray_ref *pr;
    ASSERT_OK(dray_actor_call(rt, a, "pid", NULL, 0, &pr));
    dray_value pv;
    ASSERT_OK(dray_get(rt, pr, 30000, &pv));
    if (workers)
        ASSERT_NE(pv.u.i, getpid());
    dray_ref_release(pr);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    if (in.engine) {
        /* A program started from rank 0 inherits the launcher's variables but runs locally. */
        char exe[4096], cmd[8300];
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        ASSERT_GT(len, 0);
        exe[len] = 0;
        ASSERT_STREQ(getenv("DRAY_LAUNCH"), "0");
        snprintf(cmd, sizeof cmd, "%s launch_rank_main | grep -q 'launch-ok engine=none'", exe);
        ASSERT_EQ(system(cmd), 0);
    }
    printf("launch-ok engine=%s workers=%d pids=%lld sum=%lld\n", in.engine ? in.engine : "none",
           workers, (long long)npids, (long long)sum);
}

/* ==== Runs under real launchers ==== */

static bool have_mpirun(void)
{
    if (system("command -v mpirun >/dev/null 2>&1") == 0)
        return true;
    printf("SKIP: mpirun is not installed (Debian: openmpi-bin, see tools/install-deps.sh)\n");
    return false;
}

static void self_exe(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    ASSERT_GT(n, 0);
    out[n] = 0;
}

/* The build directory as an absolute path (the runs change directory). */
static const char *build_dir(void)
{
    static char dir[4096];
    const char *b = getenv("DRAY_BUILD_DIR");
    ASSERT_TRUE(realpath(b ? b : "build", dir) != NULL);
    return dir;
}

static const char *source_dir(void)
{
    static char dir[4096];
    const char *s = getenv("DRAY_SOURCE_DIR");
    ASSERT_TRUE(realpath(s ? s : ".", dir) != NULL);
    return dir;
}

/* Reads a whole small file (owned, NUL-terminated). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static char tmpdir[64];

/* A failing assertion still removes the run's directory. */
static void on_abort(int sig)
{
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd))
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void make_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dray-lntest-XXXXXX");
    ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
    signal(SIGABRT, on_abort);
}

static void remove_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ASSERT_EQ(system(cmd), 0);
    tmpdir[0] = 0;
}

/* Counts the other processes with an argument equal to `arg` (to check that no rank outlived the
 * run). */
static int count_procs(const char *arg)
{
    DIR *d = opendir("/proc");
    ASSERT_TRUE(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        char path[64], buf[8192];
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
            if (!strcmp(buf + i, arg)) {
                n++;
                break;
            }
    }
    closedir(d);
    return n;
}


/* A rank program that never finishes: rank 0 says it is ready, then waits to be killed. */
TEST(launch_hang_main)
{
    if (!getenv("OMPI_COMM_WORLD_RANK")) {
        printf("launch_hang_main: not started as a rank: nothing to do\n");
        return;
    }
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    printf("rank0-ready\n");
    fflush(stdout);
    for (;;)
        pause();
}

static pid_t spawn_rank(const char *exe, int rank, const char *marker, const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        char r[16], key[64], ldir[128], out[128];
        snprintf(r, sizeof r, "%d", rank);
        snprintf(key, sizeof key, "kill%d", (int)getppid());
        snprintf(ldir, sizeof ldir, "%s/launch", dir);
        snprintf(out, sizeof out, "%s/rank%d.out", dir, rank);
        setenv("OMPI_COMM_WORLD_RANK", r, 1);
        setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
        setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
        setenv("OMPI_MCA_ess_base_jobid", key, 1);
        setenv("DRAY_LAUNCH_DIR", ldir, 1);
        if (!freopen(out, "w", stdout))
            _exit(126);
        execl(exe, exe, "launch_hang_main", marker, (char *)NULL);
        _exit(127);
    }
    ASSERT_GT(pid, 0);
    return pid;
}

/* kill -9 of rank 0 (driver) takes its head down (a pipe from rank 0 reads EOF), and the worker rank
 * then exits 0 by itself: nothing is left running. */
TEST(killed_rank0_leaves_nothing_running)
{
    clear_launch_env();
    make_tmp();
    char exe[4096], path[128];
    self_exe(exe, sizeof exe);
    pid_t r0 = spawn_rank(exe, 0, tmpdir, tmpdir), r1 = spawn_rank(exe, 1, tmpdir, tmpdir);
    snprintf(path, sizeof path, "%s/rank0.out", tmpdir);
    bool ready = false;
    for (int i = 0; i < 2000 && !ready; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        if (access(path, F_OK) != 0)
            continue; /* the child has not made its output file yet */
        char *out = slurp(path);
        ready = strstr(out, "rank0-ready") != NULL;
        free(out);
    }
    ASSERT_TRUE(ready);
    ASSERT_EQ(count_procs(tmpdir), 3); /* rank 0, its head, rank 1 */
    ASSERT_EQ(kill(r0, SIGKILL), 0);
    ASSERT_EQ(waitpid(r0, NULL, 0), r0);
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 1000 && (got = waitpid(r1, &st, WNOHANG)) == 0; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    if (got != r1)
        kill(r1, SIGKILL);
    ASSERT_EQ(got, r1);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int left = -1;
    for (int i = 0; i < 500 && (left = count_procs(tmpdir)) != 0; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(left, 0);
    remove_tmp();
}

TEST(mpirun_runs_other_ranks_as_workers)
{
    if (!have_mpirun())
        return;
    make_tmp();
    char exe[4096], cmd[20000];
    self_exe(exe, sizeof exe);
    /* A private marker in the arguments finds leftover ranks afterwards. */
    snprintf(cmd, sizeof cmd, "cd %s && timeout -k 5 50 mpirun --allow-run-as-root --oversubscribe "
             "-n 3 %s launch_rank_main %s >out 2>err", tmpdir, exe, tmpdir);
    int rc = system(cmd);
    char path[128];
    snprintf(path, sizeof path, "%s/out", tmpdir);
    char *out = slurp(path);
    snprintf(path, sizeof path, "%s/err", tmpdir);
    char *err = slurp(path);
    if (rc != 0)
        fprintf(stderr, "mpirun exit %d\nstdout:\n%s\nstderr:\n%s\n", rc, out, err);
    ASSERT_EQ(rc, 0); /* mpirun fails when any rank exits non-zero */
    ASSERT_CONTAINS(out, "launch-ok engine=openmpi workers=2 pids=2 sum=21253400");
    /* Both worker ranks stopped when the driver finished. */
    ASSERT_CONTAINS(err, "lost the head: stopping");
    ASSERT_EQ(count_procs(tmpdir), 0);
    free(out);
    free(err);
    remove_tmp();
}

/* The first line of text containing `part` (copied to out without the newline), or an assertion
 * failure. */
static void line_with(const char *text, const char *part, char *out, size_t size)
{
    const char *p = strstr(text, part);
    if (!p)
        fprintf(stderr, "no line with '%s' in:\n%s\n", part, text);
    ASSERT_TRUE(p != NULL);
    while (p > text && p[-1] != '\n')
        p--;
    size_t n = strcspn(p, "\n");
    ASSERT_LT(n, size);
    memcpy(out, p, n);
    out[n] = 0;
}

/* The seed's array example under mpirun -n 3 prints the same result as the local run, and all its
 * tasks ran on the two worker ranks (the driver's summary from the head's counters). */
TEST(mpirun_array_mean_equals_local)
{
    if (!have_mpirun())
        return;
    make_tmp();
    char cmd[20000], path[128];
    snprintf(cmd, sizeof cmd, "cd %s && DRAY_LAUNCH=0 timeout 50 %s/bin/array_mean >local",
             tmpdir, build_dir());
    ASSERT_EQ(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "cd %s && timeout -k 5 50 mpirun --allow-run-as-root --oversubscribe "
             "-n 3 -x DRAY_LAUNCH_SUMMARY=1 %s/bin/array_mean >out 2>err", tmpdir, build_dir());
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/local", tmpdir);
    char *local = slurp(path);
    snprintf(path, sizeof path, "%s/out", tmpdir);
    char *out = slurp(path);
    snprintf(path, sizeof path, "%s/err", tmpdir);
    char *err = slurp(path);
    if (rc)
        fprintf(stderr, "mpirun exit %d\n%s\n%s\n", rc, out, err);
    ASSERT_EQ(rc, 0);
    char a[256], b[256];
    line_with(local, "  shape ", a, sizeof a);
    line_with(out, "  shape ", b, sizeof b);
    ASSERT_STREQ(b, a);
    ASSERT_CONTAINS(out, "check: ok");
    /* "  130 tasks, ..." from the driver; the worker ranks' counters add up to it. */
    line_with(out, "tasks, ", a, sizeof a);
    long tasks = strtol(a, NULL, 10);
    ASSERT_GT(tasks, 0);
    long nodes = 0, done = 0;
    for (const char *p = err; (p = strstr(p, "tasks_done ")); p++) {
        long d = strtol(p + 11, NULL, 10);
        ASSERT_GT(d, 0); /* each worker rank ran some */
        done += d;
        nodes++;
    }
    ASSERT_EQ(nodes, 2);
    ASSERT_EQ(done, tasks);
    free(local);
    free(out);
    free(err);
    remove_tmp();
}

/* deploy/slurm/dray.sbatch run as Slurm would (a stand-in srun starts the ranks with the variables
 * of a step): one node (rendezvous file), then "two nodes" without a shared directory (the head on
 * the first host of the node list at DRAY_LAUNCH_PORT, the secret from the script). */
static void run_sbatch(int nodes)
{
    make_tmp();
    char exe[4096], cmd[20000], path[128];
    self_exe(exe, sizeof exe);
    const char *src = source_dir();
    char extra[128] = "";
    if (nodes > 1)
        snprintf(extra, sizeof extra, "DRAY_BIND=127.0.0.1 DRAY_LAUNCH_PORT=%d ",
                 20000 + (int)(getpid() % 20000));
    snprintf(cmd, sizeof cmd, "cd %s && env -u DRAY_SECRET PATH=%s/tests/cluster/fake-slurm:$PATH "
             "SLURM_JOB_ID=%d SLURM_NTASKS=3 SLURM_JOB_NUM_NODES=%d SLURM_JOB_NODELIST=localhost "
             "SLURM_CPUS_PER_TASK=1 %s timeout -k 5 50 bash %s/deploy/slurm/dray.sbatch %s "
             "launch_rank_main %s >out 2>err", tmpdir, src, (int)getpid(), nodes, extra, src, exe,
             tmpdir);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/out", tmpdir);
    char *out = slurp(path);
    snprintf(path, sizeof path, "%s/err", tmpdir);
    char *err = slurp(path);
    if (rc)
        fprintf(stderr, "sbatch script exit %d\n%s\n%s\n", rc, out, err);
    ASSERT_EQ(rc, 0);
    ASSERT_CONTAINS(out, "launch-ok engine=slurm workers=2 pids=2 sum=21253400");
    ASSERT_CONTAINS(err, "dray: job ");
    ASSERT_EQ(count_procs(tmpdir), 0);
    free(out);
    free(err);
    remove_tmp();
}

TEST(sbatch_script_one_node)
{
    run_sbatch(1);
}

TEST(sbatch_script_two_nodes_without_shared_dir)
{
    run_sbatch(2);
}

TEST(sbatch_script_checks_its_arguments)
{
    const char *src = source_dir();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "bash -n %s/deploy/slurm/dray.sbatch", src);
    ASSERT_EQ(system(cmd), 0);
    /* Outside a job and without a program it refuses with usage (exit 2). */
    snprintf(cmd, sizeof cmd, "env -u SLURM_JOB_ID bash %s/deploy/slurm/dray.sbatch ./x 2>/dev/null",
             src);
    int rc = system(cmd);
    ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    snprintf(cmd, sizeof cmd, "SLURM_JOB_ID=1 bash %s/deploy/slurm/dray.sbatch 2>/dev/null",
             src);
    rc = system(cmd);
    ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

RUN_TESTS(T_(slurm_host_lists), T_(launcher_variables_are_read), T_(launch_refuses_unsafe_dir_and_times_out),
          T_(launch_rank_main), T_(launch_hang_main), T_(killed_rank0_leaves_nothing_running),
          T_(mpirun_runs_other_ranks_as_workers), T_(mpirun_array_mean_equals_local),
          T_(sbatch_script_one_node), T_(sbatch_script_two_nodes_without_shared_dir),
          T_(sbatch_script_checks_its_arguments))
