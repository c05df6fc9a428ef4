/* runtime.h: per-rank threads and the OpenBLAS kernel report.
 *
 * Threads per rank: runtime.threads if > 0; else OPENBLAS_NUM_THREADS or OMP_NUM_THREADS
 * if set; else the CPUs this rank may run on, shared among the ranks of the node when the
 * rank is not bound to a subset. The OpenBLAS kernel is never changed (the site or user
 * chose it with OPENBLAS_CORETYPE); when it is an AVX2 kernel on an AVX-512 CPU, rank 0
 * says how to run faster.
 */
#ifndef PREFER_RUNTIME_H
#define PREFER_RUNTIME_H

#include "prefer/config.h"

/* Choose and apply the thread count; returns it. Prints the kernel line on rank 0 when
 * verbose. */
int runtime_setup(const RuntimeConfig *rc, int verbose);
/* The OpenBLAS core name in use (e.g. "Haswell"). */
const char *runtime_blas_core(void);
int runtime_threads(void);

#endif
