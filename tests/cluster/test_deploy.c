/* deploy/kubernetes: every manifest parses (python3-yaml) and the pieces fit together; broken copies
 * are caught; and the head, worker and driver containers, run as local processes exactly as their
 * manifests say, form a working cluster (tests/cluster/k8s_check.py does the work). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static const char *src_dir(void)
{
    const char *s = getenv("DRAY_SOURCE_DIR");
    return s ? s : ".";
}

static const char *bld_dir(void)
{
    const char *b = getenv("DRAY_BUILD_DIR");
    return b ? b : "build";
}

static int sh(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[20000];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

TEST(kubernetes_manifests_parse_and_fit)
{
    if (system("/usr/bin/python3 -c 'import yaml' 2>/dev/null")) {
        fprintf(stderr, "python3-yaml is missing: run tools/install-deps.sh\n");
        ASSERT_TRUE(!"python3-yaml installed");
    }
    ASSERT_EQ(sh("/usr/bin/python3 %s/tests/cluster/k8s_check.py %s/deploy/kubernetes%s", src_dir(),
                 src_dir(), ""), 0);
}

static char dir[64]; /* the current broken copy, removed even when an assertion fails */

static void on_abort(int sig)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && system(cmd))
        fprintf(stderr, "could not remove %s\n", dir);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Copies the manifests, applies a sed expression to one file, and expects the check to fail. */
static void broken_copy_fails(const char *file, const char *sed)
{
    snprintf(dir, sizeof dir, "/tmp/dray-k8s-broken-XXXXXX");
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    signal(SIGABRT, on_abort);
    char cp[8300];
    snprintf(cp, sizeof cp, "cp %s/deploy/kubernetes/*.yaml %s/", src_dir(), dir);
    ASSERT_EQ(system(cp), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    ASSERT_EQ(sh("sed -i -e '%s' %s%s", sed, path, ""), 0);
    ASSERT_EQ(sh("/usr/bin/python3 %s/tests/cluster/k8s_check.py %s 2>%s/why", src_dir(), dir, dir),
              1);
    snprintf(cp, sizeof cp, "grep -q 'k8s_check: FAIL' %s/why", dir);
    ASSERT_EQ(system(cp), 0);
    snprintf(cp, sizeof cp, "rm -rf %s", dir);
    ASSERT_EQ(system(cp), 0);
    dir[0] = 0;
}

TEST(broken_manifests_are_caught)
{
    broken_copy_fails("workers.yaml", "s/dray-head:6379/dray-hed:6379/");
    broken_copy_fails("workers.yaml", "s/key: secret/key: token/");
    broken_copy_fails("head.yaml", "s/component: head$/component: worker/");
    broken_copy_fails("head.yaml", "s/\"--port\", \"6379\"/\"--port\", \"7000\"/");
    broken_copy_fails("workers.yaml", "s/\\$(POD_IP)/\\$(POD_ADDR)/");
    broken_copy_fails("secret.yaml", "s/^  secret:/  token:/");
    broken_copy_fails("head.yaml", "s/^  replicas: 1/  replicas: [/");
    broken_copy_fails("head.yaml", "s/readinessProbe:/readinesProbe:/");
    broken_copy_fails("workers.yaml", "s/secretKeyRef:/secretRef:/");
}

TEST(kubernetes_containers_run_a_cluster_locally)
{
    ASSERT_EQ(sh("timeout -k 5 60 /usr/bin/python3 %s/tests/cluster/k8s_check.py %s/deploy/kubernetes "
                 "--run %s", src_dir(), src_dir(), bld_dir()), 0);
}

RUN_TESTS(T_(kubernetes_manifests_parse_and_fit), T_(broken_manifests_are_caught),
          T_(kubernetes_containers_run_a_cluster_locally))
