/* TEMPORARY until the core lands on main: weak stand-ins for the three core error functions the
 * parquet module uses, so the module builds and tests alone. The core's definitions override them. */
#include <stdarg.h>
#include <stdio.h>

#include "dray/core.h"

static _Thread_local char pq_fallback_msg[512];

__attribute__((weak)) dray_status dray_set_error(dray_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pq_fallback_msg, sizeof(pq_fallback_msg), fmt, ap);
    va_end(ap);
    return st;
}

__attribute__((weak)) const char *dray_last_error(void) { return pq_fallback_msg; }

__attribute__((weak)) const char *dray_status_str(dray_status st)
{
    switch (st) {
#define PQ_FALLBACK_CASE(name, code, text) case DRAY_##name: return text;
        DRAY_STATUS_LIST(PQ_FALLBACK_CASE)
#undef PQ_FALLBACK_CASE
    }
    return "unknown status";
}
