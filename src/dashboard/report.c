/* dray_performance_report: one self-contained HTML file of a recorded run (task stream, per-function
 * times, memory over time): the page's drawing code and the run's data inlined, nothing fetched. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char report_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>dray performance report</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}\n"
    "canvas{border:1px solid #ddd;max-width:100%}table{border-collapse:collapse}\n"
    "th,td{border:1px solid #ddd;padding:.2em .6em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}\n"
    ".legend span{display:inline-block;margin-right:1em;font-size:.85em}"
    ".legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em}\n"
    "</style></head><body>\n<h1>dray performance report</h1>\n<p id=\"meta\"></p>\n"
    "<h2>Task stream</h2><canvas id=\"stream\" width=\"1400\" height=\"200\"></canvas>\n"
    "<div id=\"legend\" class=\"legend\"></div>\n"
    "<h2>Time per function</h2><table id=\"functions\"><thead><tr><th>function</th><th>done</th>"
    "<th>failed</th><th>total s</th><th>mean ms</th><th>max ms</th></tr></thead><tbody></tbody>"
    "</table>\n<h2>Memory over time</h2><canvas id=\"memory\" width=\"1000\" height=\"200\"></canvas>\n";

static const char report_main[] =
    "(function(){var R=JSON.parse(document.getElementById('dray-data').textContent);\n"
    "var D=DrayDraw,ev=R.stream.events,t1=0;ev.forEach(function(e){if(e.stop_ms>t1)t1=e.stop_ms;});\n"
    "var rows=R.stream.rows.slice().sort(function(a,b){return (a.row<0)-(b.row<0)||"
    "Math.abs(a.row)-Math.abs(b.row);});\n"
    "var c=document.getElementById('stream');c.height=Math.max(60,24+rows.length*22);\n"
    "var t0=ev.length?Math.min.apply(null,ev.map(function(e){return e.start_ms;})):0;\n"
    "D.stream(c,ev,rows,t0,Math.max(t1,t0+1));\n"
    "D.legend(document.getElementById('legend'),R.tasks.by_function.map(function(f){return f.name;}));\n"
    "document.querySelector('#functions tbody').innerHTML=R.tasks.by_function.map(function(f){"
    "return '<tr><td>'+D.esc(f.name)+'</td><td>'+f.done+'</td><td>'+f.failed+'</td><td>'+"
    "f.total_s.toFixed(4)+'</td><td>'+f.mean_ms.toFixed(4)+'</td><td>'+f.max_ms.toFixed(3)+"
    "'</td></tr>';}).join('');\n"
    "var s=R.memory.samples,m=document.getElementById('memory'),x=m.getContext('2d');\n"
    "var mx=Math.max.apply(null,s.map(function(p){return p.rss_bytes;}).concat([1]));\n"
    "var tm=s.length?s[s.length-1].t_ms:1;x.strokeStyle='#1f77b4';x.beginPath();\n"
    "s.forEach(function(p,i){var px=5+p.t_ms/Math.max(tm,1)*(m.width-10),"
    "py=m.height-20-p.rss_bytes/mx*(m.height-30);if(i)x.lineTo(px,py);else x.moveTo(px,py);});\n"
    "x.stroke();x.fillStyle='#444';x.fillText('RSS (max '+D.bytes(mx)+') over '+(tm/1000).toFixed(1)"
    "+' s',8,12);\n"
    "document.getElementById('meta').textContent=R.tasks.by_state.finished+' tasks finished ('+"
    "R.tasks.by_state.failed+' failed), '+ev.length+' stream blocks'+(R.stream.first>0?"
    "' (the oldest were dropped)':'')+', written '+R.written;\n"
    "})();\n";

/* Writes `s` into f with "</" made safe inside a <script> element. */
static void put_script_safe(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (s[0] == '<' && s[1] == '/')
            fputs("<\\/", f), s++;
        else
            fputc(*s, f);
    }
}

dray_status dray_performance_report(dray_runtime *rt, const char *path)
{
    if (!rt || !path)
        return dray_set_error(DRAY_EINVAL, "dray_performance_report: runtime or path is NULL");
    dray__events *ev = dray__events_of(rt);
    db_history *h = NULL;
    if (ev) {
        pthread_mutex_lock(&ev->lock);
        h = ev->observer;
        pthread_mutex_unlock(&ev->lock);
    }
    if (!h)
        return dray_set_error(DRAY_EINVAL, "dray_performance_report '%s': nothing was recorded: "
                                           "call dray_dashboard_record(rt) before the work",
                              path);
    const db_asset *draw = db_asset_find("/stream.js");
    if (!draw)
        return dray_set_error(DRAY_ENOTFOUND, "dray_performance_report: stream.js is not embedded");
    db_history_collect(h);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "stream", db_json_stream(h, 0, DB_STREAM));
    cJSON_AddItemToObject(data, "tasks", db_json_tasks(h));
    cJSON_AddItemToObject(data, "memory", db_json_memory(h));
    char when[64];
    time_t t = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
    cJSON_AddStringToObject(data, "written", when);
    char *json = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    if (!json)
        return dray_set_error(DRAY_ENOMEM, "out of memory writing report '%s'", path);
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        free(json);
        return dray_set_error(DRAY_EIO, "cannot write report '%s': %s", path, strerror(e));
    }
    fputs(report_head, f);
    fputs("<script type=\"application/json\" id=\"dray-data\">", f);
    put_script_safe(f, json);
    fputs("</script>\n<script>\n", f);
    fwrite(draw->data, 1, draw->len, f);
    fputs("\n", f);
    fputs(report_main, f);
    fputs("</script>\n</body></html>\n", f);
    free(json);
    if (fclose(f))
        return dray_set_error(DRAY_EIO, "cannot write report '%s': %s", path, strerror(errno));
    return DRAY_OK;
}
