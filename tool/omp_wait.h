/*
 * omp_wait.h -- how long idle OpenMP threads of a program spin before they sleep.
 *
 * Include in one file of a program (the `ouro` tool, test/bench/model_bench.c) and call
 * omp_wait_bound(argv) first thing in main.
 *
 * Every matrix product of the forward pass is one OpenMP parallel region, hundreds per decoded
 * token, with short serial stretches between them.  GNU libgomp lets a thread that waits (for
 * the next region, or at a barrier) spin 300,000 times by default before it sleeps: several
 * milliseconds.  On a machine with other work, a thread of the team that the system
 * deschedules holds up the region's end while the others burn their time slices spinning:
 * measured here under load, single-sequence decode ran 3 to 6 times slower with 2 threads than
 * with the bound below, and batched decode 2.5 times (README, Performance).  10,000 spins (well
 * under a millisecond) still cover the gaps between regions.
 *
 * libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when it is loaded, before main, so
 * the program sets GOMP_SPINCOUNT and runs itself again (execv of /proc/self/exe; where that
 * fails it goes on as it is).  A value the user set wins.  Inside PostgreSQL or SQLite the host
 * loads libgomp: set GOMP_SPINCOUNT in the server's or the program's environment there.
 */
#ifndef OURO_OMP_WAIT_H
#define OURO_OMP_WAIT_H

#include <stdlib.h>
#include <unistd.h>

static void omp_wait_bound(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("GOMP_SPINCOUNT", "10000", 0) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* still here: the setting applies to nothing this time */
}

#endif
