/* test_mpi_prefshard.c: sharded dataset reads at whatever world size it is started with.
 *
 * Rank 0 writes the files; every rank opens them as a shard (collective) and reads its
 * part of each global batch of pairs, which must equal the full read (each rank also does
 * a full prefdata_read, for comparison only), and bytes_read must be exactly its own share.
 * Failures at open must come back on every rank with the same message: a corrupt token, a
 * file that is not HDF5, and (at 2 ranks and more) a file that rank 0 sees but the others
 * do not, or see with another length (each rank opens a relative path from its own working
 * directory), which must name the first failing rank.
 *
 * Alone it runs at one rank without MPI (make check's unit-test pass, with LeakSanitizer
 * on); tests/cli/test_prefshard_mpi.sh runs it under mpirun -np 2 and -np 3. Failure counts
 * are summed over ranks before rank 0 reports; every rank exits non-zero if any failed.
 */
#define _GNU_SOURCE
#include "prefer/dist.h"
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/prefshard.h"
#include "prefer/rng.h"
#include "prefer/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int g_checks, g_fails;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        g_checks++;                                                                           \
        if (!(cond)) {                                                                        \
            if (g_fails++ < 20) {                                                             \
                fprintf(stderr, "FAIL [rank %d] %s:%d: ", dist_rank(), __FILE__, __LINE__);   \
                fprintf(stderr, __VA_ARGS__);                                                 \
                fputc('\n', stderr);                                                          \
            }                                                                                 \
        }                                                                                     \
    } while (0)

static char g_dir[64];

/* P prompts, K responses each, random lengths (some empty), scores, pairs within prompts;
 * written by rank 0 to path, then every rank waits for it. */
static void write_dataset(const char *path, uint64_t seed, int64_t P, int64_t K, int64_t vocab)
{
    if (dist_rank() == 0) {
        Rng r;
        rng_init(&r, seed, 0);
        PrefData d = {0};
        d.vocab_size = vocab;
        d.n_prompts = P;
        d.n_responses = P * K;
        d.n_pairs = P * (K - 1);
        d.prompt_offsets = xmalloc(sizeof(int64_t) * (size_t)(P + 1));
        d.response_offsets = xmalloc(sizeof(int64_t) * (size_t)(P * K + 1));
        d.prompt_offsets[0] = d.response_offsets[0] = 0;
        for (int64_t i = 0; i < P; i++)
            d.prompt_offsets[i + 1] = d.prompt_offsets[i] + (int64_t)rng_below(&r, 40);
        for (int64_t i = 0; i < P * K; i++)
            d.response_offsets[i + 1] = d.response_offsets[i] + (int64_t)rng_below(&r, 120);
        int64_t tp = d.prompt_offsets[P], tr = d.response_offsets[P * K];
        d.prompt_tokens = xmalloc(sizeof(int32_t) * (size_t)tp + 1);
        d.response_tokens = xmalloc(sizeof(int32_t) * (size_t)tr + 1);
        for (int64_t i = 0; i < tp; i++)
            d.prompt_tokens[i] = (int32_t)rng_below(&r, (uint64_t)vocab);
        for (int64_t i = 0; i < tr; i++)
            d.response_tokens[i] = (int32_t)rng_below(&r, (uint64_t)vocab);
        d.response_prompt = xmalloc(sizeof(int64_t) * (size_t)(P * K));
        d.response_score = xmalloc(sizeof(float) * (size_t)(P * K));
        for (int64_t i = 0; i < P * K; i++) {
            d.response_prompt[i] = i / K;
            d.response_score[i] = (float)rng_normal(&r);
        }
        d.pair_chosen = xmalloc(sizeof(int64_t) * (size_t)d.n_pairs);
        d.pair_rejected = xmalloc(sizeof(int64_t) * (size_t)d.n_pairs);
        for (int64_t p = 0, k = 0; p < P; p++)
            for (int64_t j = 1; j < K; j++, k++) {
                d.pair_chosen[k] = p * K;
                d.pair_rejected[k] = p * K + j;
            }
        prefdata_write(path, &d, NULL);
        prefdata_free(&d);
    }
    dist_barrier();
}

static int same(const void *a, const void *b, size_t bytes) { return bytes == 0 || (a && b && !memcmp(a, b, bytes)); }

/* Tokens of the distinct responses among ids and of their distinct prompts. */
static int64_t share_tokens(const PrefData *full, int64_t n, const int64_t *ids)
{
    char *seen_r = xcalloc((size_t)full->n_responses + 1, 1), *seen_p = xcalloc((size_t)full->n_prompts + 1, 1);
    int64_t t = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t e = ids[i], p = full->response_prompt[e];
        if (!seen_r[e])
            t += full->response_offsets[e + 1] - full->response_offsets[e];
        if (!seen_p[p])
            t += full->prompt_offsets[p + 1] - full->prompt_offsets[p];
        seen_r[e] = seen_p[p] = 1;
    }
    free(seen_r);
    free(seen_p);
    return t;
}

/* Each rank takes its contiguous part of every global batch of a shuffled pair order (the
 * same on every rank), gathers it, and checks tokens and bytes against the full read. */
static void test_global_batches(void)
{
    char *path = xasprintf("%s/data.h5", g_dir);
    write_dataset(path, 5, 300, 4, 5000);
    PrefShard s;
    char err[1024] = "";
    int rc = prefshard_open(path, 5000, &s, err, sizeof err);
    CHECK(rc == 0, "open failed: %s", err);
    if (rc != 0) {
        free(path);
        return;
    }
    PrefData full;
    prefdata_read(path, 0, &full);
    const PrefData *m = &s.meta;
    CHECK(m->n_prompts == full.n_prompts && m->n_responses == full.n_responses && m->n_pairs == full.n_pairs &&
              m->vocab_size == full.vocab_size,
          "metadata counts differ from the full read");
    CHECK(same(m->prompt_offsets, full.prompt_offsets, 8 * (size_t)(full.n_prompts + 1)) &&
              same(m->response_offsets, full.response_offsets, 8 * (size_t)(full.n_responses + 1)) &&
              same(m->response_prompt, full.response_prompt, 8 * (size_t)full.n_responses) &&
              same(m->response_score, full.response_score, 4 * (size_t)full.n_responses) &&
              same(m->pair_chosen, full.pair_chosen, 8 * (size_t)full.n_pairs) &&
              same(m->pair_rejected, full.pair_rejected, 8 * (size_t)full.n_pairs),
          "broadcast metadata differs from the full read");
    CHECK(m->prompt_tokens == NULL && m->response_tokens == NULL, "the shard holds tokens");

    int rank = dist_rank(), world = dist_size();
    int64_t N = full.n_pairs, G = 48; /* global batch in pairs */
    int64_t *order = xmalloc(sizeof(int64_t) * (size_t)N), *ids = xmalloc(sizeof(int64_t) * (size_t)(2 * G));
    for (int64_t i = 0; i < N; i++)
        order[i] = i;
    Rng r;
    rng_init(&r, 77, 0);
    rng_shuffle_i64(&r, order, N);
    PrefData local = {0};
    int64_t mine = 0, all = 0, mismatches = 0;
    for (int64_t b0 = 0; b0 + G <= N; b0 += G) {
        for (int q = 0; q < world; q++) { /* every rank's share, for the expected total */
            int64_t lo = b0 + G * q / world, hi = b0 + G * (q + 1) / world, n = 0;
            for (int64_t i = lo; i < hi; i++) {
                ids[n++] = full.pair_chosen[order[i]];
                ids[n++] = full.pair_rejected[order[i]];
            }
            int64_t t = share_tokens(&full, n, ids);
            all += t;
            if (q != rank)
                continue;
            mine += t;
            if (prefshard_gather_responses(&s, n, ids, &local, err, sizeof err) != 0) {
                CHECK(0, "gather failed: %s", err);
                continue;
            }
            mismatches += prefdata_validate(&local, err, sizeof err) != 0 || local.n_responses != n;
            for (int64_t j = 0; j < n && j < local.n_responses; j++) {
                int64_t e = ids[j], p = full.response_prompt[e], lp = local.response_prompt[j];
                int64_t len = full.response_offsets[e + 1] - full.response_offsets[e];
                int64_t plen = full.prompt_offsets[p + 1] - full.prompt_offsets[p];
                mismatches += local.response_offsets[j + 1] - local.response_offsets[j] != len;
                mismatches += !same(local.response_tokens + local.response_offsets[j],
                                    full.response_tokens + full.response_offsets[e], 4 * (size_t)len);
                mismatches += local.response_score[j] != full.response_score[e];
                if (lp < 0 || lp >= local.n_prompts) {
                    mismatches++;
                    continue;
                }
                mismatches += local.prompt_offsets[lp + 1] - local.prompt_offsets[lp] != plen;
                mismatches += !same(local.prompt_tokens + local.prompt_offsets[lp],
                                    full.prompt_tokens + full.prompt_offsets[p], 4 * (size_t)plen);
            }
        }
    }
    CHECK(mismatches == 0, "%lld mismatches against the full read", (long long)mismatches);
    CHECK(s.bytes_read == 4 * mine, "rank read %lld bytes, its share is %lld", (long long)s.bytes_read,
          (long long)(4 * mine));
    int64_t sum = s.bytes_read;
    dist_allreduce_sum_i64(&sum, 1);
    CHECK(sum == 4 * all, "ranks read %lld bytes in all, the batches hold %lld", (long long)sum, (long long)(4 * all));
    if (world > 1)
        CHECK(s.bytes_read < 4 * all, "one rank read every batch's tokens");
    if (rank == 0)
        printf("test_mpi_prefshard: %lld pairs in batches of %lld: rank 0 read %lld of %lld token bytes\n",
               (long long)(N / G * G), (long long)G, (long long)s.bytes_read, (long long)(4 * all));
    free(order);
    free(ids);
    prefdata_free(&local);
    prefdata_free(&full);
    prefshard_close(&s);
    free(path);
}

/* Open must fail on every rank with one message containing want (and want2). */
static void expect_fail_everywhere(const char *what, const char *path, const char *want, const char *want2)
{
    PrefShard s;
    char err[1024] = "";
    int rc = prefshard_open(path, 0, &s, err, sizeof err);
    CHECK(rc == -1, "%s: open returned %d", what, rc);
    CHECK(strstr(err, want) && (!want2 || strstr(err, want2)), "%s: message '%s' lacks '%s' / '%s'", what, err, want,
          want2 ? want2 : "");
    CHECK(s.file < 0 && s.meta.prompt_offsets == NULL, "%s: the shard was left open", what);
    int64_t h[2];
    h[0] = (int64_t)(util_hash(UTIL_HASH_INIT, err, strlen(err)) >> 1);
    h[1] = -h[0];
    dist_allreduce_min_i64(h, 2);
    CHECK(h[0] == -h[1], "%s: the ranks got different messages (mine: '%s')", what, err);
    prefshard_close(&s);
}

static void test_failures(void)
{
    /* A token out of range, written into a valid file by rank 0. */
    char *path = xasprintf("%s/corrupt.h5", g_dir);
    write_dataset(path, 6, 40, 3, 100);
    if (dist_rank() == 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t ds = H5Dopen2(f, "prompts/tokens", H5P_DEFAULT), sp = H5Dget_space(ds);
        hsize_t at = 17, one = 1;
        int32_t v = -3;
        hid_t ms = H5Screate_simple(1, &one, NULL);
        CHECK(H5Sselect_hyperslab(sp, H5S_SELECT_SET, &at, NULL, &one, NULL) >= 0 &&
                  H5Dwrite(ds, H5T_NATIVE_INT32, ms, sp, H5P_DEFAULT, &v) >= 0,
              "could not corrupt %s", path);
        H5Sclose(ms);
        H5Sclose(sp);
        H5Dclose(ds);
        H5Fclose(f);
    }
    dist_barrier();
    expect_fail_everywhere("corrupt token", path, path, "/prompts/tokens[17] = -3 is out of range [0, 100)");
    free(path);

    path = xasprintf("%s/notes.txt", g_dir);
    if (dist_rank() == 0) {
        FILE *fp = fopen(path, "w");
        if (fp) {
            fputs("not a dataset\n", fp);
            fclose(fp);
        }
    }
    dist_barrier();
    expect_fail_everywhere("not HDF5", path, path, "not an HDF5 file");
    free(path);

    if (dist_size() < 2)
        return;
    /* Rank 0 sees a valid file; the others do not see it, or see one of another length. */
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        die("getcwd failed");
    char *a = xasprintf("%s/a", g_dir), *b = xasprintf("%s/b", g_dir);
    if (dist_rank() == 0) {
        mkdir(a, 0755);
        mkdir(b, 0755);
    }
    dist_barrier();
    path = xasprintf("%s/data.h5", a);
    write_dataset(path, 7, 30, 2, 50);
    free(path);
    if (chdir(dist_rank() == 0 ? a : b) != 0)
        die("chdir failed");
    expect_fail_everywhere("file missing on rank 1..", "data.h5", "[rank 1 on ", "data.h5: cannot open as HDF5");
    path = xasprintf("%s/data.h5", b);
    write_dataset(path, 8, 31, 2, 50);
    free(path);
    expect_fail_everywhere("another file on rank 1..", "data.h5", "[rank 1 on ", "when rank 0 validated it");
    if (chdir(cwd) != 0)
        die("chdir failed");
    free(a);
    free(b);
}

int main(int argc, char **argv)
{
    /* Started by a launcher: MPI. Alone: no MPI at all (Open MPI's own allocations would trip
     * LeakSanitizer), which the dist_* calls allow at one rank. */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK"))
        dist_init(&argc, &argv);
    h5u_init();
    if (dist_rank() == 0) {
        snprintf(g_dir, sizeof g_dir, "/tmp/prefer-test-mpi-prefshard-XXXXXX");
        if (!mkdtemp(g_dir))
            die("mkdtemp failed");
    }
    dist_bcast(g_dir, sizeof g_dir, 0);

    test_global_batches();
    test_failures();
    ssize_t open_objs = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CHECK(open_objs == 0, "%zd HDF5 objects still open", open_objs);

    int64_t tot[2] = {g_checks, g_fails};
    dist_allreduce_sum_i64(tot, 2);
    dist_barrier();
    if (dist_rank() == 0) {
        printf("test_mpi_prefshard: %lld checks at %d rank%s, %lld failed\n", (long long)tot[0], dist_size(),
               dist_size() > 1 ? "s" : "", (long long)tot[1]);
        char *cmd = xasprintf("rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_dir);
        free(cmd);
    }
    dist_finalize();
    return tot[1] != 0;
}
