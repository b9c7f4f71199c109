/* Internals of lazy frames shared by frame.c and groupby.c: the frame struct, the graph it shares
 * with the frames derived from it, and partitions as extension values. */
#ifndef DRAY_FRAME_FRAME_INTERNAL_H
#define DRAY_FRAME_FRAME_INTERNAL_H

#include <errno.h>
#include <glob.h>

#include "internal.h"

/* The lazy graph shared by a frame and everything derived from it (frames are single-threaded
 * handles, so the count is plain). */
typedef struct dray__fgraph {
    int refs;
    dray_graph *graph;
    dray_ref **pinned; /* persisted partitions this graph reads */
    size_t n_pinned;
    int64_t bad_rows;  /* of the last compute */
    int64_t skipped;   /* row groups skipped by Parquet pushdown */
    char *spill_dir;   /* shuffles write their buckets here when set */
    bool own_spill_dir; /* a temporary directory made for the runtime's memory limit: removed */
    uint64_t spill_seq;
} dray__fgraph;

struct dray_frame {
    dray_runtime *rt;
    dray__fgraph *g;
    dray_table *schema; /* no rows */
    size_t nparts;
    dray_node *parts;
};

/* A partition as a value: a table and the number of CSV rows skipped making it. */
typedef struct dray__part {
    dray_ext_obj hdr;
    dray_table *t;
    int64_t bad_rows;
} dray__part;

/* The partition codec (part_codec.c) of the "frame.table" extension type: bytes of a partition,
 * and a new partition from untrusted bytes (DRAY_EFORMAT naming the fault). */
dray_status dray__part_encode(const dray_ext_obj *obj,
                              dray_status (*write)(void *buf, const void *data, size_t len), void *buf);
dray_status dray__part_decode(const void *data, size_t len, dray_ext_obj **out);

/* dray__part_value: a value that takes t. */
dray_status dray__part_value(dray_table *t, int64_t bad_rows, dray_value *out);
/* dray__part_of: the partition in v (borrowed), or NULL. */
dray__part *dray__part_of(const dray_value *v);
/* dray__graph_run: submits `outputs` of g and gets their values (owned) into results; on a failure
 * returns the first failed output's status with its cause in dray_last_error and writes nothing.
 * (dray_graph_compute keeps the failed output's error value: see docs/frame.md.) */
dray_status dray__graph_run(dray_graph *g, dray_runtime *rt, const dray_node *outputs, size_t n,
                            dray_value *results);
/* dray__glob: the sorted files matching pattern (globfree them), or DRAY_ENOTFOUND naming `what`. */
dray_status dray__glob(const char *pattern, const char *what, glob_t *gl);

/* dray__frame_new_empty: a frame with a new graph, no partitions yet, and `schema` (taken, even on
 * failure). */
dray_status dray__frame_new_empty(dray_runtime *rt, dray_table *schema, dray_frame **out);
/* dray__frame_compute_parts: every partition's table (owned) into tables[0..nparts). */
dray_status dray__frame_compute_parts(const dray_frame *f, dray_table **tables);

#endif /* DRAY_FRAME_FRAME_INTERNAL_H */
