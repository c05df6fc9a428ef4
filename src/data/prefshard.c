/* prefshard.c: sharded reading of a preference dataset (prefshard.h).
 *
 * Does: validate the file once on rank 0 and agree on the verdict on every rank; share the
 * small metadata arrays by broadcast; keep the file open on every rank and read, per call,
 * exactly the tokens of the prompts and responses one rank needs, as one HDF5 selection
 * per token dataset (the union of the sequences' ranges, merged and sorted), then copy them
 * out in the caller's order, duplicates included.
 * Does not: decide which rank gets which pairs (the trainer does), or cache tokens beyond
 * HDF5's chunk cache. Nor use MPI-IO (H5Pset_fapl_mpio): each rank reads a small ragged set
 * of its own, which the sec2 driver does independently; with MPI-IO the open and every
 * metadata call would be collective and this module would need MPI, for no gain on reads
 * that are not collective.
 *
 * Why one selection per dataset (measured, warm chunk cache, 64 runs of 16-300 tokens from
 * 1 Mi tokens): the union as OR'ed hyperslabs reads in 0.048 ms, one H5Dread per run in
 * 0.075 ms, a point selection (H5Sselect_elements) of the same tokens in 0.7-0.9 ms. At
 * 1024 runs: 0.64 ms (hyperslabs built as in select_runs) vs 1.1 ms per run.
 */
#define _GNU_SOURCE
#include "prefer/prefshard.h"
#include "prefer/dist.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of an error message that travel between ranks. */
#define PS_MSG 1024

/* Chunk cache of each token dataset. prefer's token arrays are deflated in chunks of 64 Ki
 * tokens, and decompressing one costs ~0.5 ms here, so a gather of 64 random sequences
 * from a dataset whose chunks are not cached takes ~35 ms, and ~0.06 ms once they are.
 * A rank revisits the same chunks epoch after epoch: a token array of up to 8 Mi tokens
 * stays cached whole (HDF5's default of 1 MiB holds 4 chunks). The cache only takes the
 * memory of the chunks read. W0 must stay below 1: with w0 = 1.0 HDF5 1.10.8 never evicts
 * a partly read chunk, and the cache grows past its size to the whole decompressed array
 * (measured: +64 MB of RSS for 16 Mi tokens with a 1 MiB cache). */
#define PS_CACHE_BYTES ((size_t)32 << 20)
#define PS_CACHE_SLOTS 12799 /* prime, ~100x the chunks that fit */
#define PS_CACHE_W0 0.75     /* HDF5's default */

/* The local PrefData's arrays, as indices into PrefShard.lbuf. */
enum { LB_PTOK, LB_POFF, LB_RTOK, LB_ROFF, LB_RPROMPT, LB_SCORE };

/* Grow a private scratch buffer to at least need bytes (contents kept). */
static void *grow(void *p, size_t *cap, size_t need)
{
    if (p && need <= *cap)
        return p;
    size_t n = need > 2 * *cap ? need : 2 * *cap;
    *cap = n ? n : 1;
    return xrealloc(p, *cap);
}

/* Grow one of the caller's local arrays. Its capacity is known only if it is the buffer
 * the last gather left there; any other (malloc'd) buffer is realloc'd to the size. */
static void *grow_local(PrefShard *s, int k, void *cur, size_t need)
{
    PrefShardBuf *b = &s->lbuf[k];
    size_t cap = cur && cur == b->ptr ? b->cap : 0;
    void *p = grow(cur, &cap, need);
    b->ptr = p;
    b->cap = cap;
    return p;
}

/* ---- open --------------------------------------------------------------------------- */

/* Open a token dataset and check it against the validated offsets: integers, rank 1,
 * exactly n_tok elements. Returns the dataset or -1 with a message. */
static hid_t open_tokens(hid_t file, const char *path, const char *name, int64_t n_tok, char *err,
                         int errlen)
{
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0)
        H5Pset_chunk_cache(dapl, PS_CACHE_SLOTS, PS_CACHE_BYTES, PS_CACHE_W0);
    hid_t ds = H5Dopen2(file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
    if (dapl >= 0)
        H5Pclose(dapl);
    if (ds < 0) {
        util_seterr(err, errlen, "%s: cannot open dataset /%s", path, name);
        return -1;
    }
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    int cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dim = 0;
    if (nd == 1)
        H5Sget_simple_extent_dims(sp, &dim, NULL);
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    if (cls != H5T_INTEGER || nd != 1 || (int64_t)dim != n_tok) {
        if (cls != H5T_INTEGER || nd != 1)
            util_seterr(err, errlen, "%s: /%s is not a 1-D integer array", path, name);
        else
            util_seterr(err, errlen, "%s: /%s holds %lld tokens here but %lld when rank 0 validated it",
                   path, name, (long long)dim, (long long)n_tok);
        size_t k = strlen(err);
        util_seterr(err + k, errlen - (int)k,
               " (the file changed since, or this node sees another file at that path?)");
        H5Dclose(ds);
        return -1;
    }
    return ds;
}

/* Broadcast one metadata array from rank 0; the others allocate it (at least 1 byte, as
 * prefdata_read_checked does for empty arrays). */
static void bcast_array(void **p, size_t bytes, int rank)
{
    if (rank != 0)
        *p = xmalloc(bytes);
    dist_bcast(*p, bytes, 0);
}

int prefshard_open(const char *path, int64_t vocab_limit, PrefShard *s, char *err, int errlen)
{
    memset(s, 0, sizeof *s);
    s->file = s->prompt_ds = s->response_ds = -1;
    h5u_init();
    int rank = dist_rank(), size = dist_size();
    char msg[PS_MSG] = "";

    /* Rank 0: the one full read, with every validation rule. */
    int64_t hdr[6] = {0};
    if (rank == 0) {
        PrefData *d = &s->meta;
        hdr[0] = prefdata_read_checked(path, vocab_limit, d, msg, sizeof msg) != 0;
        if (!hdr[0]) {
            free(d->prompt_tokens);
            free(d->response_tokens);
            d->prompt_tokens = d->response_tokens = NULL;
        }
        hdr[1] = d->n_prompts;
        hdr[2] = d->n_responses;
        hdr[3] = d->n_pairs;
        hdr[4] = d->vocab_size;
        hdr[5] = d->response_score != NULL;
    }
    dist_bcast(hdr, sizeof hdr, 0);
    if (hdr[0]) {
        dist_bcast(msg, sizeof msg, 0);
        util_seterr(err, errlen, "%s", msg);
        memset(s, 0, sizeof *s);
        s->file = s->prompt_ds = s->response_ds = -1;
        return -1;
    }

    /* Everyone gets the validated metadata. */
    PrefData *m = &s->meta;
    m->n_prompts = hdr[1];
    m->n_responses = hdr[2];
    m->n_pairs = hdr[3];
    m->vocab_size = hdr[4];
    size_t np = (size_t)m->n_prompts, nr = (size_t)m->n_responses, nn = (size_t)m->n_pairs;
    bcast_array((void **)&m->prompt_offsets, (np + 1) * sizeof(int64_t), rank);
    bcast_array((void **)&m->response_offsets, (nr + 1) * sizeof(int64_t), rank);
    bcast_array((void **)&m->response_prompt, nr * sizeof(int64_t), rank);
    if (hdr[5])
        bcast_array((void **)&m->response_score, nr * sizeof(float), rank);
    bcast_array((void **)&m->pair_chosen, nn * sizeof(int64_t), rank);
    bcast_array((void **)&m->pair_rejected, nn * sizeof(int64_t), rank);
    s->path = xstrdup(path);

    /* Every rank opens the file for its own reads. A rank that cannot (the file is not on
     * its node, or was replaced) must not leave the others waiting: agree on the lowest
     * failing rank and broadcast its message. */
    int bad = 0;
    s->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->file < 0) {
        util_seterr(msg, sizeof msg, "%s: cannot open as HDF5 (is the file visible on every node?)",
               path);
        bad = 1;
    }
    if (!bad) {
        s->prompt_ds = open_tokens(s->file, path, "prompts/tokens", m->prompt_offsets[np], msg,
                                   sizeof msg);
        bad = s->prompt_ds < 0;
    }
    if (!bad) {
        s->response_ds = open_tokens(s->file, path, "responses/tokens", m->response_offsets[nr],
                                     msg, sizeof msg);
        bad = s->response_ds < 0;
    }
    if (size > 1) {
        int64_t first = bad ? rank : size;
        dist_allreduce_min_i64(&first, 1);
        if (first < size) {
            if (rank == first && first != 0) {
                char tmp[PS_MSG];
                util_seterr(tmp, sizeof tmp, "[rank %d on %s] %s", rank, dist_hostname(), msg);
                memcpy(msg, tmp, sizeof msg);
            }
            dist_bcast(msg, sizeof msg, (int)first);
            bad = 1;
        }
    }
    if (bad) {
        util_seterr(err, errlen, "%s", msg);
        prefshard_close(s);
        return -1;
    }
    return 0;
}

void prefshard_close(PrefShard *s)
{
    if (!s)
        return;
    if (s->prompt_ds > 0)
        H5Dclose(s->prompt_ds);
    if (s->response_ds > 0)
        H5Dclose(s->response_ds);
    if (s->file > 0)
        H5Fclose(s->file);
    prefdata_free(&s->meta);
    free(s->path);
    free(s->rng);
    free(s->tok);
    free(s->sorted);
    free(s->look);
    free(s->pid);
    memset(s, 0, sizeof *s);
    s->file = s->prompt_ds = s->response_ds = -1;
}

/* ---- gather ------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Pairs (key, value) of int64, by key then value. */
static int cmp_pair(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if (x[0] != y[0])
        return (x[0] > y[0]) - (x[0] < y[0]);
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Select runs [lo, hi) of s->rng (sorted, disjoint) in a copy of the dataspace base; the
 * caller closes the result; -1 on failure. HDF5 1.10's H5S_SELECT_OR walks the whole
 * selection for each block it adds (quadratic: 4096 runs take 158 ms), so small groups
 * are OR'ed block by block and groups are merged pairwise with H5Scombine_select
 * (n log n: 4096 runs in 1.7 ms). */
static hid_t select_runs(hid_t base, const int64_t *rng, int64_t lo, int64_t hi)
{
    if (hi - lo <= 32) {
        hid_t sp = H5Scopy(base);
        for (int64_t k = lo; sp >= 0 && k < hi; k++) {
            hsize_t start = (hsize_t)rng[3 * k], len = (hsize_t)(rng[3 * k + 1] - rng[3 * k]);
            if (H5Sselect_hyperslab(sp, k == lo ? H5S_SELECT_SET : H5S_SELECT_OR, &start, NULL, &len,
                                    NULL) < 0) {
                H5Sclose(sp);
                sp = -1;
            }
        }
        return sp;
    }
    int64_t mid = lo + (hi - lo) / 2;
    hid_t a = select_runs(base, rng, lo, mid), b = a >= 0 ? select_runs(base, rng, mid, hi) : -1;
    hid_t c = a >= 0 && b >= 0 ? H5Scombine_select(a, H5S_SELECT_OR, b) : -1;
    if (a >= 0)
        H5Sclose(a);
    if (b >= 0)
        H5Sclose(b);
    return c;
}

/* Read the tokens of sequences ids[0..n) of one token dataset (off: its offsets) into out,
 * concatenated in the order of ids (out holds the sum of their lengths). The distinct
 * ranges are merged into sorted [begin, end) runs and read as one selection into s->tok;
 * each sequence is then copied from there. Returns 0 or -1 with a message. */
static int read_seqs(PrefShard *s, hid_t ds, const char *name, const int64_t *off, int64_t n,
                     const int64_t *ids, int32_t *out, char *err, int errlen)
{
    if (n == 0)
        return 0;
    s->sorted = grow(s->sorted, &s->sorted_cap, (size_t)n * sizeof(int64_t));
    memcpy(s->sorted, ids, (size_t)n * sizeof(int64_t));
    qsort(s->sorted, (size_t)n, sizeof(int64_t), cmp_i64);

    /* Merged runs: rng[3k] = begin, rng[3k+1] = end, rng[3k+2] = position in s->tok. */
    s->rng = grow(s->rng, &s->rng_cap, (size_t)n * 3 * sizeof(int64_t));
    int64_t nrun = 0, total = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t b = off[s->sorted[k]], e = off[s->sorted[k] + 1];
        if (b == e)
            continue;
        if (nrun > 0 && b <= s->rng[3 * (nrun - 1) + 1]) {
            int64_t *last = &s->rng[3 * (nrun - 1) + 1];
            if (e > *last) {
                total += e - *last;
                *last = e;
            }
            continue;
        }
        s->rng[3 * nrun] = b;
        s->rng[3 * nrun + 1] = e;
        s->rng[3 * nrun + 2] = total;
        total += e - b;
        nrun++;
    }
    if (total == 0)
        return 0;
    s->tok = grow(s->tok, &s->tok_cap, (size_t)total * sizeof(int32_t));

    hsize_t cnt = (hsize_t)total;
    hid_t base = H5Dget_space(ds);
    hid_t fsp = base >= 0 ? select_runs(base, s->rng, 0, nrun) : -1;
    hid_t msp = fsp >= 0 ? H5Screate_simple(1, &cnt, NULL) : -1;
    int ok = msp >= 0 && H5Dread(ds, H5T_NATIVE_INT32, msp, fsp, H5P_DEFAULT, s->tok) >= 0;
    if (msp >= 0)
        H5Sclose(msp);
    if (fsp >= 0)
        H5Sclose(fsp);
    if (base >= 0)
        H5Sclose(base);
    if (!ok) {
        util_seterr(err, errlen, "%s: cannot read %lld tokens of /%s (I/O error or corrupt chunk?)",
               s->path, (long long)total, name);
        return -1;
    }
    s->bytes_read += total * (int64_t)sizeof(int32_t);

    /* The file was validated when opened; a token out of range now means it changed. */
    int64_t V = s->meta.vocab_size;
    for (int64_t k = 0; k < nrun; k++) {
        const int32_t *t = s->tok + s->rng[3 * k + 2];
        for (int64_t i = 0; i < s->rng[3 * k + 1] - s->rng[3 * k]; i++)
            if (t[i] < 0 || t[i] >= V) {
                util_seterr(err, errlen,
                       "%s: /%s[%lld] = %d is out of range [0, %lld) (the file changed after it "
                       "was validated?)",
                       s->path, name, (long long)(s->rng[3 * k] + i), t[i], (long long)V);
                return -1;
            }
    }

    /* Copy out in the caller's order: find each sequence's run by binary search. */
    int32_t *o = out;
    for (int64_t j = 0; j < n; j++) {
        int64_t b = off[ids[j]], len = off[ids[j] + 1] - b;
        if (len == 0)
            continue;
        int64_t lo = 0, hi = nrun - 1;
        while (lo < hi) { /* last run with begin <= b */
            int64_t mid = (lo + hi + 1) / 2;
            if (s->rng[3 * mid] <= b)
                lo = mid;
            else
                hi = mid - 1;
        }
        memcpy(o, s->tok + s->rng[3 * lo + 2] + (b - s->rng[3 * lo]), (size_t)len * sizeof(int32_t));
        o += len;
    }
    return 0;
}

static void check_ids(const char *what, int64_t n, const int64_t *ids, int64_t limit)
{
    if (n < 0)
        die("prefshard_gather: %lld %s requested", (long long)n, what);
    if (n > 0 && !ids)
        die("prefshard_gather: %lld %s requested but no ids given", (long long)n, what);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= limit)
            die("prefshard_gather: %s id [%lld] = %lld is out of range [0, %lld)", what,
                (long long)i, (long long)ids[i], (long long)limit);
}

static int gather(PrefShard *s, int64_t n_p, const int64_t *prompt_ids, int64_t n_r,
                  const int64_t *response_ids, PrefData *local, char *err, int errlen)
{
    const PrefData *m = &s->meta;

    /* Local arrays: pairs never, scores only if the file has them. */
    free(local->pair_chosen);
    free(local->pair_rejected);
    local->pair_chosen = local->pair_rejected = NULL;
    local->n_pairs = 0;
    local->n_prompts = local->n_responses = 0;
    local->vocab_size = m->vocab_size;

    local->prompt_offsets = grow_local(s, LB_POFF, local->prompt_offsets, (size_t)(n_p + 1) * sizeof(int64_t));
    local->prompt_offsets[0] = 0;
    for (int64_t i = 0; i < n_p; i++)
        local->prompt_offsets[i + 1] = local->prompt_offsets[i] + m->prompt_offsets[prompt_ids[i] + 1] -
                                       m->prompt_offsets[prompt_ids[i]];
    local->response_offsets = grow_local(s, LB_ROFF, local->response_offsets, (size_t)(n_r + 1) * sizeof(int64_t));
    local->response_offsets[0] = 0;
    for (int64_t j = 0; j < n_r; j++)
        local->response_offsets[j + 1] = local->response_offsets[j] + m->response_offsets[response_ids[j] + 1] -
                                         m->response_offsets[response_ids[j]];
    local->prompt_tokens = grow_local(s, LB_PTOK, local->prompt_tokens,
                                      (size_t)local->prompt_offsets[n_p] * sizeof(int32_t));
    local->response_tokens = grow_local(s, LB_RTOK, local->response_tokens,
                                        (size_t)local->response_offsets[n_r] * sizeof(int32_t));

    if (read_seqs(s, s->prompt_ds, "prompts/tokens", m->prompt_offsets, n_p, prompt_ids,
                  local->prompt_tokens, err, errlen) != 0 ||
        read_seqs(s, s->response_ds, "responses/tokens", m->response_offsets, n_r, response_ids,
                  local->response_tokens, err, errlen) != 0) {
        local->prompt_offsets[0] = local->response_offsets[0] = 0;
        return -1;
    }

    /* response_prompt: file prompt -> first local index, by binary search in sorted
     * (file id, local index) pairs. */
    local->response_prompt = grow_local(s, LB_RPROMPT, local->response_prompt, (size_t)n_r * sizeof(int64_t));
    s->look = grow(s->look, &s->look_cap, (size_t)n_p * 2 * sizeof(int64_t));
    for (int64_t i = 0; i < n_p; i++) {
        s->look[2 * i] = prompt_ids[i];
        s->look[2 * i + 1] = i;
    }
    qsort(s->look, (size_t)n_p, 2 * sizeof(int64_t), cmp_pair);
    for (int64_t j = 0; j < n_r; j++) {
        int64_t p = m->response_prompt[response_ids[j]], lo = 0, hi = n_p;
        while (lo < hi) { /* first pair with id >= p */
            int64_t mid = (lo + hi) / 2;
            if (s->look[2 * mid] < p)
                lo = mid + 1;
            else
                hi = mid;
        }
        local->response_prompt[j] = lo < n_p && s->look[2 * lo] == p ? s->look[2 * lo + 1] : -1;
    }
    if (m->response_score) {
        local->response_score = grow_local(s, LB_SCORE, local->response_score, (size_t)n_r * sizeof(float));
        for (int64_t j = 0; j < n_r; j++)
            local->response_score[j] = m->response_score[response_ids[j]];
    } else {
        free(local->response_score);
        local->response_score = NULL;
    }
    local->n_prompts = n_p;
    local->n_responses = n_r;
    return 0;
}

int prefshard_gather(PrefShard *s, int64_t n_p, const int64_t *prompt_ids, int64_t n_r,
                     const int64_t *response_ids, PrefData *local, char *err, int errlen)
{
    if (s->file < 0)
        die("prefshard_gather: the shard is not open");
    check_ids("prompt", n_p, prompt_ids, s->meta.n_prompts);
    check_ids("response", n_r, response_ids, s->meta.n_responses);
    double t0 = now_s();
    int rc = gather(s, n_p, prompt_ids, n_r, response_ids, local, err, errlen);
    s->gathers++;
    s->gather_seconds += now_s() - t0;
    return rc;
}

int prefshard_gather_responses(PrefShard *s, int64_t n_r, const int64_t *response_ids,
                               PrefData *local, char *err, int errlen)
{
    if (s->file < 0)
        die("prefshard_gather_responses: the shard is not open");
    check_ids("response", n_r, response_ids, s->meta.n_responses);
    /* Distinct prompts in order of first appearance: sort (prompt, j), keep each prompt's
     * first j, sort those by j. */
    s->look = grow(s->look, &s->look_cap, (size_t)n_r * 2 * sizeof(int64_t));
    for (int64_t j = 0; j < n_r; j++) {
        s->look[2 * j] = s->meta.response_prompt[response_ids[j]];
        s->look[2 * j + 1] = j;
    }
    qsort(s->look, (size_t)n_r, 2 * sizeof(int64_t), cmp_pair);
    int64_t np = 0, prev = -1;
    for (int64_t k = 0; k < n_r; k++) { /* compacts in place: np <= k */
        int64_t p = s->look[2 * k], j = s->look[2 * k + 1];
        if (p != prev) {
            s->look[2 * np] = j;
            s->look[2 * np + 1] = p;
            np++;
        }
        prev = p;
    }
    qsort(s->look, (size_t)np, 2 * sizeof(int64_t), cmp_pair);
    s->pid = grow(s->pid, &s->pid_cap, (size_t)np * sizeof(int64_t));
    for (int64_t i = 0; i < np; i++)
        s->pid[i] = s->look[2 * i + 1];
    return prefshard_gather(s, np, s->pid, n_r, response_ids, local, err, errlen);
}
