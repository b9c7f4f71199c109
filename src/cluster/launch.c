/* Scale-out under existing engines (mpirun, srun), like dask-mpi: in dray_init rank 0 starts a head
 * beside itself and becomes the driver; every other rank finds the head (a rendezvous file, or the
 * Slurm node list and a port from the job id), serves as a worker node until it stops, and exits. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "launch.h"

struct dray__launch {
    pid_t head;      /* the head process (a child of rank 0) */
    int life_fd;     /* write end of a pipe: the head stops when it reads EOF */
    int size;        /* ranks in the job */
    bool file_mode;  /* the head's address is in dir/address */
    bool made_secret;
    bool own_dir;    /* the directory was chosen by us: removed at the end */
    char dir[4096];
    char address[300];
};

/* ==== Reading the launcher's environment ==== */

/* An optional non-negative integer variable: DRAY_OK with *present false when unset. */
static dray_status env_uint(const char *name, int *out, bool *present)
{
    const char *v = getenv(name);
    *present = v && *v;
    if (!*present)
        return DRAY_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < 0 || x > 1000000000)
        return dray_set_error(DRAY_EINVAL, "launcher variable %s='%s' is not a non-negative integer",
                              name, v);
    *out = (int)x;
    return DRAY_OK;
}

static dray_status env_need(const char *name, int *out)
{
    bool present;
    dray_status st = env_uint(name, out, &present);
    if (!st && !present)
        return dray_set_error(DRAY_EINVAL, "launcher variable %s is missing", name);
    return st;
}

/* Copies v into key, replacing anything but [A-Za-z0-9._-] so it can name a file. */
static void set_key(dray__launch_info *o, const char *prefix, const char *v)
{
    snprintf(o->key, sizeof o->key, "%s%s", prefix, v);
    for (char *p = o->key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            *p = '_';
}

static const char *first_env(const char *const *names)
{
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v)
            return v;
    }
    return NULL;
}

dray_status dray__slurm_first_host(const char *nl, char *out, size_t size)
{
    if (!nl || !*nl)
        return dray_set_error(DRAY_EINVAL, "empty Slurm node list");
    size_t i = strcspn(nl, "[,");
    if (i == 0)
        return dray_set_error(DRAY_EINVAL, "Slurm node list '%s' does not start with a host", nl);
    if (nl[i] != '[') {
        if (i >= size)
            return dray_set_error(DRAY_EINVAL, "Slurm node list '%s': host name too long", nl);
        memcpy(out, nl, i);
        out[i] = 0;
        return DRAY_OK;
    }
    /* prefix[range,...]suffix: the first number of the first range, zero padding kept. */
    const char *num = nl + i + 1;
    size_t nd = strspn(num, "0123456789");
    const char *close = strchr(num, ']');
    if (nd == 0 || !close || !strchr("-,]", num[nd]))
        return dray_set_error(DRAY_EINVAL, "Slurm node list '%s': malformed range", nl);
    const char *suffix = close + 1;
    size_t ns = strcspn(suffix, ",");
    if (memchr(suffix, '[', ns))
        return dray_set_error(DRAY_EINVAL, "Slurm node list '%s': more than one range in a host "
                              "name is not supported (set DRAY_LAUNCH_DIR)", nl);
    if (i + nd + ns >= size)
        return dray_set_error(DRAY_EINVAL, "Slurm node list '%s': host name too long", nl);
    snprintf(out, size, "%.*s%.*s%.*s", (int)i, nl, (int)nd, num, (int)ns, suffix);
    return DRAY_OK;
}

int dray__launch_port(const char *key)
{
    const char *v = getenv("DRAY_LAUNCH_PORT");
    if (v && *v) {
        int p = atoi(v);
        return p >= 1 && p <= 65535 ? p : -1;
    }
    uint32_t h = 2166136261u; /* FNV-1a of the job key */
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return 20000 + (int)(h % 20000);
}

static dray_status detect_openmpi(dray__launch_info *o)
{
    dray_status st;
    int local, nodes;
    bool has_local, has_nodes;
    o->engine = "openmpi";
    if ((st = env_need("OMPI_COMM_WORLD_RANK", &o->rank)) ||
        (st = env_need("OMPI_COMM_WORLD_SIZE", &o->size)) ||
        (st = env_uint("OMPI_COMM_WORLD_LOCAL_SIZE", &local, &has_local)) ||
        (st = env_uint("OMPI_MCA_orte_num_nodes", &nodes, &has_nodes)))
        return st;
    if (has_nodes)
        o->nhosts = nodes;
    else if (has_local && local == o->size)
        o->nhosts = 1;
    static const char *const keys[] = {"OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE",
                                       "OMPI_MCA_orte_ess_jobid", NULL};
    const char *k = first_env(keys);
    if (k)
        set_key(o, "ompi-", k);
    return DRAY_OK;
}

static dray_status detect_mpich(dray__launch_info *o)
{
    dray_status st;
    int local;
    bool has_local;
    o->engine = "mpich";
    if ((st = env_need("PMI_RANK", &o->rank)) || (st = env_need("PMI_SIZE", &o->size)) ||
        (st = env_uint("MPI_LOCALNRANKS", &local, &has_local)))
        return st;
    /* Hydra sets MPI_LOCALNRANKS; without it assume one host. */
    o->nhosts = !has_local || local == o->size ? 1 : 0;
    static const char *const keys[] = {"PMI_KVSNAME", "PMIX_NAMESPACE", NULL};
    const char *k = first_env(keys);
    if (k)
        set_key(o, "mpich-", k);
    return DRAY_OK;
}

/* srun sets SLURM_STEP_NUM_TASKS; a batch script itself (SLURM_PROCID=0, no step) is not a launch. */
static dray_status detect_slurm(dray__launch_info *o)
{
    dray_status st;
    bool present, step;
    int nodes, step_id = 0;
    if ((st = env_need("SLURM_PROCID", &o->rank)) ||
        (st = env_uint("SLURM_STEP_NUM_TASKS", &o->size, &present)) ||
        (st = env_uint("SLURM_STEP_ID", &step_id, &step)))
        return st;
    if (!present) {
        if (!step)
            return DRAY_OK;
        if ((st = env_need("SLURM_NTASKS", &o->size)))
            return st;
    }
    o->engine = "slurm";
    static const char *const nn[] = {"SLURM_STEP_NUM_NODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES",
                                     NULL};
    for (int i = 0; nn[i]; i++) {
        if ((st = env_uint(nn[i], &nodes, &present)))
            return st;
        if (present) {
            o->nhosts = nodes;
            break;
        }
    }
    static const char *const lists[] = {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
                                        "SLURM_NODELIST", NULL};
    const char *nl = first_env(lists);
    if (nl && (st = dray__slurm_first_host(nl, o->first_host, sizeof o->first_host)))
        return st;
    const char *job = getenv("SLURM_JOB_ID");
    if (job && *job) {
        char k[80];
        snprintf(k, sizeof k, "%.60s.%d", job, step_id);
        set_key(o, "slurm-", k);
    }
    return DRAY_OK;
}

dray_status dray__launch_detect(dray__launch_info *o)
{
    memset(o, 0, sizeof(*o));
    const char *off = getenv("DRAY_LAUNCH");
    if (off && (!strcmp(off, "0") || !strcasecmp(off, "off") || !strcasecmp(off, "no")))
        return DRAY_OK;
    dray_status st = DRAY_OK;
    if (getenv("OMPI_COMM_WORLD_RANK"))
        st = detect_openmpi(o);
    else if (getenv("PMI_RANK"))
        st = detect_mpich(o);
    else if (getenv("SLURM_PROCID"))
        st = detect_slurm(o);
    if (st || !o->engine || o->size <= 1) {
        o->engine = NULL;
        return st;
    }
    if (o->rank >= o->size) {
        const char *e = o->engine;
        o->engine = NULL;
        return dray_set_error(DRAY_EINVAL, "%s launch: rank %d is not below the job size %d", e,
                              o->rank, o->size);
    }
    if (!o->key[0]) {
        /* One host: every rank is a child of the same launcher process. */
        char k[32];
        snprintf(k, sizeof k, "%d", (int)getppid());
        set_key(o, "ppid-", k);
    }
    return DRAY_OK;
}

/* ==== Shared pieces ==== */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int env_ms(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : dflt;
}

/* The address this process listens on: 127.0.0.1 when every rank shares this host, else DRAY_BIND,
 * else the first non-loopback IPv4 address of this host's name. */
static dray_status bind_address(bool single_host, char *out, size_t size)
{
    const char *b = getenv("DRAY_BIND");
    if (b && *b) {
        struct in_addr a;
        if (inet_pton(AF_INET, b, &a) != 1)
            return dray_set_error(DRAY_EINVAL, "DRAY_BIND='%s' is not an IPv4 address", b);
        snprintf(out, size, "%s", b);
        return DRAY_OK;
    }
    snprintf(out, size, "127.0.0.1");
    if (single_host)
        return DRAY_OK;
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1))
        return dray_set_error(DRAY_EIO, "gethostname: %s", strerror(errno));
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) || !ai)
        return dray_set_error(DRAY_ENET, "cannot resolve this host's name '%s' to an IPv4 address "
                              "(set DRAY_BIND)", host);
    bool found = false;
    for (struct addrinfo *p = ai; p && !found; p = p->ai_next) {
        struct in_addr a = ((struct sockaddr_in *)p->ai_addr)->sin_addr;
        if ((ntohl(a.s_addr) >> 24) != 127) {
            inet_ntop(AF_INET, &a, out, (socklen_t)size);
            found = true;
        }
    }
    freeaddrinfo(ai);
    if (!found)
        dray__log("launch: '%s' resolves only to loopback; other hosts cannot reach this one "
                  "(set DRAY_BIND)", host);
    return DRAY_OK;
}

/* How many nodes the head lists as alive; -1 when it does not answer. */
static int alive_nodes(const char *address)
{
    dray_value s;
    if (dray_cluster_status(address, &s))
        return -1;
    const dray_value *nodes = dray_map_get(&s, "nodes");
    int n = 0;
    for (size_t i = 0; nodes && i < dray_list_len(nodes); i++) {
        const dray_value *alive = dray_map_get(dray_list_get(nodes, i), "alive");
        n += alive && alive->type == DRAY_T_BOOL && alive->u.b;
    }
    dray_value_release(&s);
    return n;
}

/* ==== Worker ranks ==== */

static bool read_address(const char *dir, char *out, size_t size)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/address", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(out, (int)size, f) != NULL;
    fclose(f);
    if (ok)
        out[strcspn(out, "\r\n")] = 0;
    return ok && strchr(out, ':');
}

/* Threads per worker rank: DRAY_WORKER_CPUS, SLURM_CPUS_PER_TASK, else on one host the cores shared
 * among the worker ranks, else every core. */
static int worker_cpus(const dray__launch_info *in)
{
    const char *v = getenv("DRAY_WORKER_CPUS");
    if (!v || !*v)
        v = getenv("SLURM_CPUS_PER_TASK");
    if (v && atoi(v) > 0)
        return atoi(v);
    if (in->nhosts == 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long per = cores / (in->size - 1);
        return per > 0 ? (int)per : 1;
    }
    return 0;
}

/* Finds the head, serves as a worker node until it stops, and exits the process. */
static void serve_as_worker(const dray__launch_info *in, const char *dir, bool file_mode,
                            const char *bind, int port)
{
    char addr[300] = {0};
    if (!file_mode)
        snprintf(addr, sizeof addr, "%s:%d", in->first_host, port);
    int timeout = env_ms("DRAY_LAUNCH_TIMEOUT_MS", 60000);
    int64_t deadline = dray__now_ns() + (int64_t)timeout * 1000000;
    /* The head answers a status request only when it is up and we hold its secret. */
    for (;;) {
        if (file_mode && access(dir, F_OK) == 0 && dray__dir_check_private(dir)) {
            fprintf(stderr, "dray: %s rank %d: %s\n", in->engine, in->rank, dray_last_error());
            exit(1);
        }
        if (file_mode)
            read_address(dir, addr, sizeof addr);
        if (addr[0] && alive_nodes(addr) >= 0)
            break;
        if (dray__now_ns() > deadline) {
            fprintf(stderr, "dray: %s rank %d: no head at %s after %d ms: %s\n", in->engine,
                    in->rank, addr[0] ? addr : file_mode ? dir : "?", timeout, dray_last_error());
            exit(1);
        }
        sleep_ms(50);
    }
    dray_cluster_opts o = {.bind = bind, .port = 0, .num_cpus = worker_cpus(in)};
    dray_status st = dray_cluster_worker_run(addr, &o);
    if (st)
        fprintf(stderr, "dray: %s rank %d: worker: %s\n", in->engine, in->rank, dray_last_error());
    exit(st ? 1 : 0);
}

/* ==== Rank 0: the head beside the driver ==== */

static void *watch_parent(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    for (;;) {
        ssize_t r = read(fd, &c, 1);
        if (r > 0 || (r < 0 && errno == EINTR))
            continue;
        break;
    }
    kill(getpid(), SIGTERM); /* the head loop's signalfd takes it */
    return NULL;
}

/* The forked head process: logs to dir/head.log, stops when rank 0 exits. Never returns. */
static void head_child(const char *dir, const char *bind, int port, int life_fd, int ready_fd)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/head.log", dir);
    int nul = open("/dev/null", O_RDWR);
    int log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        close(nul);
    }
    if (log >= 0) {
        dup2(log, 2);
        close(log);
    }
    /* Keep none of the program's other descriptors (a launcher's pipes among them) open. */
    long maxfd = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (maxfd > 0 && maxfd < 65536 ? maxfd : 65536); fd++)
        if (fd != life_fd && fd != ready_fd)
            close(fd);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, watch_parent, (void *)(intptr_t)life_fd))
        _exit(1);
    pthread_detach(t);
    dray_cluster_opts o = {.bind = bind, .port = port, .num_cpus = 0};
    dray_status st = dray_cluster_head_run(&o, dir, ready_fd);
    if (st)
        dray__log("launch: head: %s", dray_last_error());
    _exit(st ? 1 : 0);
}

dray_status dray_cluster_secret_init(const char *dir)
{
    const char *hex = getenv("DRAY_SECRET");
    if (!hex || !*hex)
        return dray_cluster_secret_create(dir);
    uint8_t s[32];
    if (strlen(hex) != 64 || dray__hex_decode(hex, s, 32))
        return dray_set_error(DRAY_EINVAL, "DRAY_SECRET must be 64 hex digits");
    return dray__secret_write(dir, hex);
}

/* Writes dir/address atomically (a temporary file renamed over it). */
static dray_status publish_address(const char *dir, const char *address)
{
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof tmp, "%s/address.%d", dir, (int)getpid());
    snprintf(path, sizeof path, "%s/address", dir);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return dray_set_error(DRAY_EIO, "cannot write %s: %s", tmp, strerror(errno));
    bool ok = fprintf(f, "%s\n", address) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return dray_set_error(DRAY_EIO, "cannot publish the head address in %s", path);
    }
    return DRAY_OK;
}

static int read_port(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[32] = {0};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    return n > 0 ? atoi(buf) : -1;
}

static dray_status start_head(struct dray__launch *L, const char *bind, int port)
{
    dray_status st;
    char path[4200];
    int life[2], ready[2];
    if ((st = dray__private_dir_make(L->dir)))
        return st;
    snprintf(path, sizeof path, "%s/address", L->dir);
    unlink(path);
    if ((st = dray_cluster_secret_init(L->dir)))
        return st;
    L->made_secret = true;
    if (pipe2(life, O_CLOEXEC))
        return dray_set_error(DRAY_EIO, "pipe: %s", strerror(errno));
    if (pipe2(ready, O_CLOEXEC)) {
        st = dray_set_error(DRAY_EIO, "pipe: %s", strerror(errno));
        goto out_close_life;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(life[1]);
        close(ready[0]);
        head_child(L->dir, bind, port, life[0], ready[1]);
    }
    if (pid < 0) {
        st = dray_set_error(DRAY_EIO, "fork: %s", strerror(errno));
        goto out_close_ready;
    }
    close(life[0]);
    close(ready[1]);
    L->head = pid;
    L->life_fd = life[1];
    int got = read_port(ready[0], 10000);
    close(ready[0]);
    if (got <= 0)
        return dray_set_error(DRAY_ENET, "launch: the head did not start on %s:%d (see %s/head.log)",
                              bind, port, L->dir);
    snprintf(L->address, sizeof L->address, "%s:%d", bind, got);
    return L->file_mode ? publish_address(L->dir, L->address) : DRAY_OK;
out_close_ready:
    close(ready[0]);
    close(ready[1]);
out_close_life:
    close(life[0]);
    close(life[1]);
    return st;
}

/* Waits until every other rank has joined the head. */
static dray_status wait_for_ranks(struct dray__launch *L)
{
    int timeout = env_ms("DRAY_LAUNCH_TIMEOUT_MS", 60000), n = 0;
    int64_t deadline = dray__now_ns() + (int64_t)timeout * 1000000;
    while ((n = alive_nodes(L->address)) < L->size - 1) {
        int wst;
        if (waitpid(L->head, &wst, WNOHANG) == L->head) {
            L->head = 0;
            return dray_set_error(DRAY_ENET, "launch: the head exited (see %s/head.log)", L->dir);
        }
        if (dray__now_ns() > deadline)
            return dray_set_error(DRAY_ETIMEDOUT, "launch: %d of %d worker ranks joined the head at "
                                  "%s within %d ms (DRAY_LAUNCH_TIMEOUT_MS)",
                                  n < 0 ? 0 : n, L->size - 1, L->address, timeout);
        sleep_ms(20);
    }
    return DRAY_OK;
}

/* Prints each node's finished-task count (DRAY_LAUNCH_SUMMARY=1): after one heartbeat period, so the
 * counts include the last tasks. */
static void print_summary(const struct dray__launch *L)
{
    sleep_ms(700);
    dray_value s;
    if (dray_cluster_status(L->address, &s)) {
        fprintf(stderr, "dray launch summary: %s\n", dray_last_error());
        return;
    }
    const dray_value *nodes = dray_map_get(&s, "nodes");
    size_t n = nodes ? dray_list_len(nodes) : 0;
    fprintf(stderr, "dray launch summary: head %s, %zu worker ranks\n", L->address, n);
    for (size_t i = 0; i < n; i++) {
        const dray_value *nd = dray_list_get(nodes, i), *a = dray_map_get(nd, "address"),
                         *pid = dray_map_get(nd, "pid"), *done = dray_map_get(nd, "tasks_done");
        if (!a || !pid || !done || a->type != DRAY_T_STRING)
            continue;
        fprintf(stderr, "dray launch summary: node %s pid %lld tasks_done %lld\n",
                dray_string_cstr(a), (long long)pid->u.i, (long long)done->u.i);
    }
    dray_value_release(&s);
}

void dray__cluster_launch_finish(struct dray__launch *L)
{
    if (!L)
        return;
    const char *sum = getenv("DRAY_LAUNCH_SUMMARY");
    if (L->head > 0 && L->address[0] && sum && *sum && strcmp(sum, "0"))
        print_summary(L);
    if (L->life_fd > 0)
        close(L->life_fd);
    bool clean = false;
    if (L->head > 0) {
        kill(L->head, SIGTERM);
        int wst = 0;
        pid_t r = 0;
        for (int i = 0; i < 500 && (r = waitpid(L->head, &wst, WNOHANG)) == 0; i++)
            sleep_ms(10);
        if (r == 0) {
            kill(L->head, SIGKILL);
            waitpid(L->head, &wst, 0);
        }
        clean = r == L->head && WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/address", L->dir);
    if (L->file_mode)
        unlink(path);
    snprintf(path, sizeof path, "%s/secret", L->dir);
    if (L->made_secret)
        unlink(path);
    snprintf(path, sizeof path, "%s/head.log", L->dir);
    if (clean)
        unlink(path);
    if (L->own_dir)
        rmdir(L->dir);
    free(L);
}

dray_status dray__cluster_launch(struct dray__launch **out, const char **address)
{
    *out = NULL;
    dray__launch_info in;
    dray_status st = dray__launch_detect(&in);
    if (st || !in.engine)
        return st;
    bool single = in.nhosts == 1, file_mode = true, own_dir = false;
    char dir[4096], bind[64];
    const char *ldir = getenv("DRAY_LAUNCH_DIR"), *home = getenv("HOME");
    if (ldir && *ldir) {
        snprintf(dir, sizeof dir, "%s", ldir);
    } else if (single || !strcmp(in.engine, "slurm")) {
        /* Several Slurm hosts without a shared directory: the head runs on the first host at a
         * port derived from the job id, and only the head's own files live here. */
        file_mode = single;
        own_dir = true;
        snprintf(dir, sizeof dir, "/tmp/dray-%u/launch-%s", (unsigned)getuid(), in.key);
    } else if (strncmp(in.key, "ppid-", 5) && home && *home) {
        own_dir = true;
        snprintf(dir, sizeof dir, "%s/.dray/launch-%s", home, in.key);
    } else {
        return dray_set_error(DRAY_EINVAL, "%s launch over several hosts: set DRAY_LAUNCH_DIR to a "
                              "directory every host sees", in.engine);
    }
    int port = 0;
    if (!file_mode) {
        if (!getenv("DRAY_SECRET"))
            return dray_set_error(DRAY_EINVAL, "slurm launch over %d hosts without DRAY_LAUNCH_DIR "
                                  "needs the cluster secret in DRAY_SECRET (64 hex digits)",
                                  in.nhosts);
        if (!in.first_host[0])
            return dray_set_error(DRAY_EINVAL, "slurm launch: no SLURM_STEP_NODELIST or "
                                  "SLURM_JOB_NODELIST to find rank 0's host");
        if ((port = dray__launch_port(in.key)) < 0)
            return dray_set_error(DRAY_EINVAL, "DRAY_LAUNCH_PORT='%s' is not a port",
                                  getenv("DRAY_LAUNCH_PORT"));
    }
    if ((st = bind_address(single, bind, sizeof bind)))
        return st;
    /* Every rank reads the secret from the launch directory unless DRAY_SECRET carries it. */
    if (file_mode && !getenv("DRAY_SECRET"))
        setenv("DRAY_CLUSTER_DIR", dir, 1);
    /* Programs this rank starts inherit the launcher's variables: they must not launch again. */
    if (in.rank != 0) {
        setenv("DRAY_LAUNCH", "0", 1);
        serve_as_worker(&in, dir, file_mode, bind, port); /* never returns */
    }
    struct dray__launch *L = calloc(1, sizeof(*L));
    if (!L)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    L->size = in.size;
    L->file_mode = file_mode;
    L->own_dir = own_dir;
    snprintf(L->dir, sizeof L->dir, "%s", dir);
    if ((st = start_head(L, bind, port)) || (st = wait_for_ranks(L))) {
        dray_status keep = st;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dray_last_error());
        dray__cluster_launch_finish(L);
        return dray_set_error(keep, "%s", msg);
    }
    setenv("DRAY_LAUNCH", "0", 1);
    *out = L;
    *address = L->address;
    return DRAY_OK;
}
