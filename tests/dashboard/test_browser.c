/* The dashboard in a real browser: runs tests/dashboard/browser.sh (the demo's live page driven by
 * headless Debian chromium through npm puppeteer-core, then the offline report). Skipped, with the
 * reason, only when chromium or node are not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    const char *build = getenv("DRAY_BUILD_DIR");
    if (access("/usr/bin/chromium", X_OK) || system("command -v node >/dev/null 2>&1")) {
        printf("SKIP: dashboard browser test needs /usr/bin/chromium and node "
               "(tools/install-deps.sh installs them)\n");
        return 0;
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "bash tests/dashboard/browser.sh '%s'", build ? build : "build");
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) {
        fprintf(stderr, "browser.sh did not run\n");
        return 1;
    }
    rc = WEXITSTATUS(rc);
    if (rc == 77) {
        printf("SKIP: dashboard browser test: chromium or node missing\n");
        return 0;
    }
    return rc;
}
