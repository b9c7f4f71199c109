/* Launch under existing engines (mpirun, srun): what launch.c reads from the environment, exposed for
 * its tests. dray_init calls the hooks declared in src/core/internal.h; nothing else needs this. */
#ifndef DRAY_CLUSTER_LAUNCH_H
#define DRAY_CLUSTER_LAUNCH_H

#include <stdbool.h>

#include "dray/core.h"

typedef struct dray__launch_info {
    const char *engine; /* "openmpi", "mpich" or "slurm"; NULL when no launcher started us */
    int rank, size;     /* this process's rank and the number of ranks */
    int nhosts;         /* hosts the ranks run on: 1, more, or 0 when the launcher does not say */
    char key[96];       /* the job's identity, equal in every rank (file-name safe) */
    char first_host[256]; /* Slurm: the first host of the step's node list (rank 0 runs there) */
} dray__launch_info;

/* Reads the launcher's variables (OpenMPI OMPI_COMM_WORLD_*, MPICH PMI_*, Slurm SLURM_*; the first
 * present wins). out->engine stays NULL when there is none, a single rank, or DRAY_LAUNCH=0. A
 * malformed variable is an error naming it. */
dray_status dray__launch_detect(dray__launch_info *out);

/* The first host of a Slurm host list ("node[07-09,12],gpu1" gives "node07"). */
dray_status dray__slurm_first_host(const char *nodelist, char *out, size_t size);

/* The head port used without a shared directory on a multi-host Slurm step: DRAY_LAUNCH_PORT, else
 * one derived from the job key in 20000..39999. */
int dray__launch_port(const char *key);

#endif /* DRAY_CLUSTER_LAUNCH_H */
