/* Processes of a cluster on this machine: PID files that carry the process start time, and stopping
 * what they record. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void dray_cluster_dir(int port, char *out, size_t size)
{
    dray__cluster_dir(port, out, size);
}

/* Field 22 of /proc/<pid>/stat (start time in clock ticks), or 0 when the process is gone. */
static unsigned long long start_time(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    if (!p)
        return 0;
    int field = 2;
    for (; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}

dray_status dray_cluster_record_pid(const char *dir, const char *name, int pid)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.pid", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return dray_set_error(DRAY_EIO, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "%d %llu\n", pid, start_time(pid));
    fclose(f);
    return DRAY_OK;
}

/* A zombie child still has a start time: reap it when it is ours. */
static bool gone(int pid, unsigned long long st)
{
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        char buf[512];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (p && p[1] == ' ')
            state = p[2];
        fclose(f);
    }
    return start_time(pid) != st || state == 'Z' || state == 0;
}

dray_status dray_cluster_stop_recorded(const char *dir, int timeout_ms, int *stopped)
{
    DIR *d = opendir(dir);
    if (!d)
        return dray_set_error(DRAY_ENOTFOUND, "cluster directory %s: %s", dir, strerror(errno));
    int pids[256];
    unsigned long long starts[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pid"))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        int pid = 0;
        unsigned long long st = 0;
        if (f) {
            if (fscanf(f, "%d %llu", &pid, &st) != 2)
                pid = 0;
            fclose(f);
        }
        unlink(path);
        if (pid > 1 && pid != getpid() && st && start_time(pid) == st) {
            kill(pid, SIGTERM);
            pids[n] = pid;
            starts[n++] = st;
        }
    }
    closedir(d);
    int64_t deadline = dray__now_ns() + (int64_t)timeout_ms * 1000000;
    for (int i = 0; i < n; i++) {
        while (!gone(pids[i], starts[i]) && dray__now_ns() < deadline) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        if (!gone(pids[i], starts[i]))
            kill(pids[i], SIGKILL);
    }
    if (stopped)
        *stopped = n;
    return DRAY_OK;
}
