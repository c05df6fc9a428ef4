/* runtime.c: threads per rank and the OpenBLAS kernel report. Never sets
 * OPENBLAS_CORETYPE: the kernel is chosen when the library loads, by the site or user. */
#define _GNU_SOURCE
#include "prefer/runtime.h"
#include "prefer/dist.h"
#include "prefer/gpt.h"
#include "prefer/util.h"

#include <cblas.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_threads = 1;

const char *runtime_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

int runtime_threads(void) { return g_threads; }

static int env_int(const char *name)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return (*end == 0 && v > 0 && v < 4096) ? (int)v : 0;
}

int runtime_setup(const RuntimeConfig *rc, int verbose)
{
    int n = rc ? rc->threads : 0;
    const char *why = "runtime.threads";
    if (n <= 0 && (n = env_int("OPENBLAS_NUM_THREADS")) > 0)
        why = "OPENBLAS_NUM_THREADS";
    if (n <= 0 && (n = env_int("OMP_NUM_THREADS")) > 0)
        why = "OMP_NUM_THREADS";
    if (n <= 0) {
        cpu_set_t set;
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        int avail = (int)online;
        if (sched_getaffinity(0, sizeof set, &set) == 0)
            avail = CPU_COUNT(&set);
        int local = dist_local_size();
        /* bound to a subset (mpirun's default binding): use it; otherwise share the node */
        n = (avail < online || local <= 1) ? avail : avail / local;
        if (n < 1)
            n = 1;
        why = avail < online ? "cores bound to this rank" : "cores of the node / ranks on it";
    }
    g_threads = n;
    gpt_set_threads(n);
    if (verbose && util_rank() == 0) {
        const char *core = runtime_blas_core();
        say("prefer: %d rank%s x %d thread%s (%s); OpenBLAS kernel %s\n", util_size(), util_size() > 1 ? "s" : "",
            n, n > 1 ? "s" : "", why, core);
        __builtin_cpu_init();
        int avx512 = __builtin_cpu_supports("avx512f");
        if (avx512 && (!strcasecmp(core, "Haswell") || !strcasecmp(core, "Zen") || !strcasecmp(core, "Sandybridge")))
            say("prefer: this CPU has AVX-512 but OpenBLAS runs its %s (AVX2) kernels, as the site or user chose; "
                "the SkylakeX kernels may be faster (shared/PLATFORM.md measured up to 1.9x on these machines): "
                "compare `make bench` with OPENBLAS_CORETYPE=SkylakeX set in the job script\n",
                core);
    }
    return n;
}
