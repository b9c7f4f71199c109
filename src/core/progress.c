/* The terminal progress bar shown while a long compute or wait runs on a TTY: tasks done/total of the
 * runtime since the wait began, rate and ETA, redrawn in place on stderr's line every 100 ms. */
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

#define SHOW_AFTER_NS 1000000000LL
#define REDRAW_MS 100

static void draw(const char *what, uint64_t done, uint64_t total, double secs)
{
    int width = 30, filled = total ? (int)((double)done / (double)total * width) : width;
    if (filled > width)
        filled = width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : ' ';
    bar[width] = '\0';
    double rate = secs > 0 ? (double)done / secs : 0;
    double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    fprintf(stdout, "\r[%s] %s %llu/%llu tasks | %.0f/s | %.1fs elapsed | ETA %.1fs ", bar, what,
            (unsigned long long)done, (unsigned long long)total, rate, secs, eta);
    fflush(stdout);
}

void dray__progress_wait(dray_runtime *rt, dray_ref *const *refs, size_t n, const char *what,
                         const dray_stats *since)
{
    bool show = rt->progress > 0 || (rt->progress < 0 && isatty(STDOUT_FILENO));
    if (!show) {
        dray__wait_all(rt, refs, n);
        return;
    }
    dray_stats s0;
    if (since)
        s0 = *since;
    else
        dray_runtime_stats(rt, &s0);
    int64_t start = dray__now_ns();
    bool drawn = false;
    for (;;) {
        bool done = dray__wait_some(rt, refs, n, n, REDRAW_MS) == DRAY_OK;
        int64_t now = dray__now_ns();
        if (rt->progress > 0 || now - start >= SHOW_AFTER_NS || (done && drawn)) {
            dray_stats s;
            dray_runtime_stats(rt, &s);
            uint64_t fin = s.tasks_finished - s0.tasks_finished;
            uint64_t tot = s.tasks_submitted - s0.tasks_submitted;
            /* Work submitted before the wait began counts too while it is unfinished. */
            uint64_t backlog = s0.tasks_submitted - s0.tasks_finished;
            /* Finished counters trail completion by a moment: once the wait is over, it is all
             * done. */
            if (done || fin > tot + backlog)
                fin = tot + backlog;
            draw(what, fin, tot + backlog, (double)(now - start) / 1e9);
            drawn = true;
        }
        if (done)
            break;
    }
    if (drawn)
        fputc('\n', stdout);
}
