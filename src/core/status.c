/* Status codes and the thread-local error message slot (the one piece of per-thread state dray keeps
 * outside the runtime object). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[1024];

const char *dray_status_str(dray_status st)
{
    switch (st) {
#define DRAY__STATUS_STR(name, code, text)                                                         \
    case DRAY_##name:                                                                              \
        return text;
        DRAY_STATUS_LIST(DRAY__STATUS_STR)
#undef DRAY__STATUS_STR
    }
    return "unknown status";
}

const char *dray_status_name(dray_status st)
{
    switch (st) {
#define DRAY__STATUS_NAME(name, code, text)                                                        \
    case DRAY_##name:                                                                              \
        return "DRAY_" #name;
        DRAY_STATUS_LIST(DRAY__STATUS_NAME)
#undef DRAY__STATUS_NAME
    }
    return "DRAY_?";
}

const char *dray_last_error(void)
{
    return last_error;
}

dray_status dray__set_errorv(dray_status st, const char *fmt, va_list ap)
{
    /* Format aside first: the arguments may point into last_error itself
     * (dray_set_error(st, "...: %s", dray_last_error())). */
    char tmp[sizeof(last_error)];
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    memcpy(last_error, tmp, sizeof(tmp));
    return st;
}

dray_status dray_set_error(dray_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dray__set_errorv(st, fmt, ap);
    va_end(ap);
    return st;
}

void dray__clear_error(void)
{
    last_error[0] = '\0';
}
