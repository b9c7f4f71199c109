/* Read-only snapshot of a Serve instance for the dashboard: per deployment, replicas, requests per
 * second, processing-latency percentiles (from a log-scale histogram of replica call times, like
 * Ray's serve_deployment_processing_latency_ms) and errors, published on the instance's runtime
 * while it records events. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dray/dashboard.h"
#include "internal.h"

/* Bucket of a latency in ns: 4 buckets per power of two above 1 us. */
static int bucket_of(uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us < 1)
        return 0;
    int lg = 63 - __builtin_clzll(us);
    int sub = lg >= 2 ? (int)((us >> (lg - 2)) & 3) : (int)((us << (2 - lg)) & 3);
    int b = 1 + lg * 4 + sub;
    return b < DRAY__SERVE_LAT_BUCKETS ? b : DRAY__SERVE_LAT_BUCKETS - 1;
}

/* The upper edge of bucket b, in ms. */
static double bucket_ms(int b)
{
    if (b == 0)
        return 0.001;
    int lg = (b - 1) / 4, sub = (b - 1) % 4;
    return ldexp(1.0 + (sub + 1) / 4.0, lg) / 1000.0;
}

void dray__serve_latency_record(dray_serve_handle *h, uint64_t ns, uint64_t n)
{
    atomic_fetch_add_explicit(&h->lat_hist[bucket_of(ns)], n, memory_order_relaxed);
}

static double percentile(const uint64_t *hist, uint64_t total, double q)
{
    if (!total)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
    for (int b = 0; b < DRAY__SERVE_LAT_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= want && hist[b])
            return bucket_ms(b);
    }
    return bucket_ms(DRAY__SERVE_LAT_BUCKETS - 1);
}

void dray__serve_publish(dray_serve *s, double now)
{
    dray_runtime *rt = s->opts.rt;
    if (!rt || !dray_events_enabled(rt))
        return;
    char name[96];
    snprintf(name, sizeof name, "%s:%d", s->host, s->port);
    double dt = s->pub_time > 0 ? now - s->pub_time : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON *deps = cJSON_AddArrayToObject(o, "deployments");
    for (dray_serve_handle *h = s->deps; h; h = h->next) {
        dray_serve_stats st;
        dray_serve_handle_stats(h, &st);
        uint64_t hist[DRAY__SERVE_LAT_BUCKETS], all[DRAY__SERVE_LAT_BUCKETS], total = 0, n_all = 0;
        for (int b = 0; b < DRAY__SERVE_LAT_BUCKETS; b++) {
            uint64_t c = atomic_load_explicit(&h->lat_hist[b], memory_order_relaxed);
            hist[b] = c - h->pub_hist[b]; /* the last period's calls */
            h->pub_hist[b] = c;
            all[b] = c;
            total += hist[b];
            n_all += c;
        }
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "name", h->name);
        if (h->route)
            cJSON_AddStringToObject(d, "route_prefix", h->route);
        cJSON_AddNumberToObject(d, "replicas", st.replicas);
        cJSON_AddNumberToObject(d, "target_replicas", st.target_replicas);
        cJSON_AddNumberToObject(d, "ongoing", (double)st.ongoing);
        cJSON_AddNumberToObject(d, "requests", (double)st.requests);
        cJSON_AddNumberToObject(d, "errors", (double)st.errors);
        cJSON_AddNumberToObject(d, "rejected", (double)st.rejected);
        cJSON_AddNumberToObject(d, "rps", dt > 0 ? (double)(st.requests - h->pub_requests) / dt : 0);
        cJSON_AddNumberToObject(d, "window_calls", (double)total);
        cJSON_AddNumberToObject(d, "p50_ms", percentile(hist, total, 0.50));
        cJSON_AddNumberToObject(d, "p99_ms", percentile(hist, total, 0.99));
        cJSON_AddNumberToObject(d, "calls", (double)n_all);
        cJSON_AddNumberToObject(d, "p50_ms_all", percentile(all, n_all, 0.50));
        cJSON_AddNumberToObject(d, "p99_ms_all", percentile(all, n_all, 0.99));
        h->pub_requests = st.requests;
        cJSON_AddItemToArray(deps, d);
    }
    s->pub_time = now;
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text)
        dray_events_publish(rt, "serve", name, text);
    cJSON_free(text);
}
