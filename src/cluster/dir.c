/* The cluster directory (secret, PID files, logs) and address parsing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

void dray__cluster_dir(int port, char *out, size_t size)
{
    const char *env = getenv("DRAY_CLUSTER_DIR");
    if (env && *env)
        snprintf(out, size, "%s", env);
    else
        snprintf(out, size, "/tmp/dray-%u/cluster-%d", (unsigned)getuid(), port);
}

dray_status dray__parse_address(const char *address, char *host, size_t hsize, int *port)
{
    const char *colon = address ? strrchr(address, ':') : NULL;
    if (!colon || colon == address || (size_t)(colon - address) >= hsize)
        return dray_set_error(DRAY_EINVAL, "address '%s' is not HOST:PORT", address ? address : "");
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
        return dray_set_error(DRAY_EINVAL, "address '%s': port is not a number in 1..65535",
                              address);
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = 0;
    *port = (int)p;
    return DRAY_OK;
}

/* Why `st` (of `path`) may not hold a secret's directory, or NULL when it may: a directory, not a
 * link, owned by us, writable by no one else. A sticky world-writable parent (/tmp) is allowed. */
static const char *dir_problem(const struct stat *st, bool is_parent)
{
    if (S_ISLNK(st->st_mode))
        return "is a symbolic link";
    if (!S_ISDIR(st->st_mode))
        return "is not a directory";
    if (st->st_uid != geteuid() && !(is_parent && st->st_uid == 0))
        return "is owned by another user";
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(is_parent && (st->st_mode & S_ISVTX)))
        return "is writable by other users";
    return NULL;
}

static dray_status check_dir(const char *path, bool is_parent)
{
    struct stat st;
    if (lstat(path, &st))
        return dray_set_error(DRAY_EIO, "cluster directory %s: %s", path, strerror(errno));
    const char *why = dir_problem(&st, is_parent);
    if (why)
        return dray_set_error(DRAY_EPERM, "cluster directory %s %s: refusing to keep the secret "
                              "there", path, why);
    return DRAY_OK;
}

dray_status dray__dir_check_private(const char *dir)
{
    return check_dir(dir, false);
}

dray_status dray__private_dir_make(const char *dir)
{
    char path[4200];
    if (!dir || !*dir || strlen(dir) >= sizeof path)
        return dray_set_error(DRAY_EINVAL, "cluster directory '%s': empty or too long",
                              dir ? dir : "");
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0700);
            *p = '/';
        }
    if (mkdir(path, 0700) && errno != EEXIST)
        return dray_set_error(DRAY_EIO, "cannot create cluster directory %s: %s", dir,
                              strerror(errno));
    dray_status st = check_dir(path, false);
    if (st)
        return st;
    char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        *slash = 0;
        st = check_dir(path, true);
    }
    return st;
}

dray_status dray__secret_write(const char *dir, const char *hex)
{
    dray_status st = dray__private_dir_make(dir);
    if (st)
        return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/secret", dir);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return dray_set_error(DRAY_EIO, "cannot create %s: %s", path, strerror(errno));
    bool ok = write(fd, hex, 64) == 64 && write(fd, "\n", 1) == 1;
    close(fd);
    if (!ok)
        return dray_set_error(DRAY_EIO, "cannot write %s", path);
    return DRAY_OK;
}

dray_status dray__secret_read(const char *path, uint8_t secret[32])
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return dray_set_error(errno == ELOOP ? DRAY_EPERM : DRAY_ENOTFOUND,
                              "cannot read the cluster secret %s: %s (set DRAY_CLUSTER_DIR or "
                              "DRAY_SECRET)", path,
                              errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st))
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_uid != geteuid())
        why = "owned by another user";
    else if (st.st_mode & 077)
        why = "readable or writable by other users (chmod 600 it)";
    char hex[80] = {0};
    ssize_t n = why ? 0 : read(fd, hex, sizeof hex - 1);
    close(fd);
    if (why)
        return dray_set_error(DRAY_EPERM, "cluster secret %s: %s", path, why);
    if (n < 64 || dray__hex_decode(hex, secret, 32))
        return dray_set_error(DRAY_EFORMAT, "cluster secret %s: not 64 hex digits", path);
    return DRAY_OK;
}

dray_status dray__secret_load(const char *address, uint8_t secret[32])
{
    const char *env = getenv("DRAY_SECRET");
    if (env && *env) {
        if (strlen(env) != 64 || dray__hex_decode(env, secret, 32))
            return dray_set_error(DRAY_EINVAL, "DRAY_SECRET must be 64 hex digits");
        return DRAY_OK;
    }
    char host[256], dir[4096], path[4200];
    int port;
    dray_status st = dray__parse_address(address, host, sizeof host, &port);
    if (st)
        return st;
    dray__cluster_dir(port, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/secret", dir);
    return dray__secret_read(path, secret);
}
