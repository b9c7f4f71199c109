/* Weak stand-ins for the few core calls the columnar and CSV code uses, so the frame module builds
 * and tests before the core runtime lands; the core's own definitions replace them at link time. */
#include <stdarg.h>
#include <stdio.h>

#include "dray/core.h"

static _Thread_local char shim_error[512];

__attribute__((weak)) const char *dray_last_error(void) { return shim_error; }

__attribute__((weak)) dray_status dray_set_error(dray_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(shim_error, sizeof(shim_error), fmt, ap);
    va_end(ap);
    return st;
}

__attribute__((weak)) const char *dray_status_str(dray_status st)
{
    switch (st) {
#define DRAY__SHIM_CASE(name, code, text) case DRAY_##name: return text;
        DRAY_STATUS_LIST(DRAY__SHIM_CASE)
#undef DRAY__SHIM_CASE
    }
    return "unknown status";
}
