/* reflogp.c: reference log-probs per response, and their cache inside the dataset file.
 * Does not: decide when to recompute (the trainer does), or talk MPI except through dist. */
#define _GNU_SOURCE
#include "prefer/reflogp.h"
#include "prefer/dist.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void reflogp_model_hash(const Gpt *m, char out[17])
{
    uint64_t h = util_hash(UTIL_HASH_INIT, &m->d, sizeof m->d);
    h = util_hash(h, m->params, sizeof(float) * m->num_params);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void reflogp_data_hash(const PrefData *d, char out[17])
{
    uint64_t h = UTIL_HASH_INIT;
    h = util_hash(h, &d->n_prompts, sizeof d->n_prompts);
    h = util_hash(h, &d->n_responses, sizeof d->n_responses);
    h = util_hash(h, d->prompt_offsets, sizeof(int64_t) * (size_t)(d->n_prompts + 1));
    h = util_hash(h, d->prompt_tokens, sizeof(int32_t) * (size_t)d->prompt_offsets[d->n_prompts]);
    h = util_hash(h, d->response_offsets, sizeof(int64_t) * (size_t)(d->n_responses + 1));
    h = util_hash(h, d->response_tokens, sizeof(int32_t) * (size_t)d->response_offsets[d->n_responses]);
    h = util_hash(h, d->response_prompt, sizeof(int64_t) * (size_t)d->n_responses);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---------------------------------------------------------------- packed passes
 *
 * A pass forwards packs: runs of consecutive responses that answer the same prompt, as one
 * sequence prompt | y_1 | ... | y_k in which each branch hides the ones before it (the
 * K-branch form of the trainer's prefix sharing), so a prompt is forwarded once for all of
 * its responses. A branch feeds its tokens but the last (which is only predicted); its
 * first token is predicted by the last prompt row. A pack holds at most
 * max(REFLOGP_PACK_TOKENS, the longest single prompt + response - 1) tokens. Packs depend on
 * the data alone, batches are `batch` consecutive packs, and ranks take whole batches: so
 * the values are the same whatever the number of ranks. */

#define REFLOGP_PACK_TOKENS 128

static int64_t plen(const PrefData *d, int64_t e)
{
    int64_t p = d->response_prompt[e];
    return d->prompt_offsets[p + 1] - d->prompt_offsets[p];
}
static int64_t rlen(const PrefData *d, int64_t e) { return d->response_offsets[e + 1] - d->response_offsets[e]; }
/* prompt + response - 1: the positions response e needs (they must fit the context) */
static int64_t single_len(const PrefData *d, int64_t e) { return plen(d, e) + rlen(d, e) - 1; }
/* tokens fed for response e as one more branch of a pack (its last token is only predicted) */
static int64_t branch_len(const PrefData *d, int64_t e) { return rlen(d, e) > 0 ? rlen(d, e) - 1 : 0; }
/* tokens fed for response e first in a pack: the whole prompt and its branch; without a
 * prompt, its first token stands for the prompt */
static int64_t first_len(const PrefData *d, int64_t e)
{
    if (plen(d, e) > 0)
        return plen(d, e) + branch_len(d, e);
    return rlen(d, e) > 1 ? rlen(d, e) - 1 : rlen(d, e);
}

/* Pack boundaries: pack k is responses [(*start)[k], (*start)[k+1]); returns the number of
 * packs. A response with an empty prompt is a pack of its own. A pack scores every token
 * of its responses but feeds each response's last token to no one, so it scores (non-empty
 * responses - prompt length) rows more than it feeds tokens: at most lp + 1 non-empty
 * responses go in one, which keeps the scored rows of a batch within tokens + packs (the
 * model's row buffers). *longest = the longest pack. */
static int64_t make_packs(const PrefData *d, int64_t **start, int *longest)
{
    int64_t R = d->n_responses, cap = REFLOGP_PACK_TOKENS, np = 0;
    for (int64_t e = 0; e < R; e++)
        cap = first_len(d, e) > cap ? first_len(d, e) : cap;
    *start = xmalloc(sizeof(int64_t) * (size_t)(R + 1));
    *longest = 1;
    for (int64_t e = 0; e < R;) {
        int64_t n = first_len(d, e), f = e++, nonempty = rlen(d, f) > 0;
        if (plen(d, f) > 0)
            while (e < R && d->response_prompt[e] == d->response_prompt[f] && n + branch_len(d, e) <= cap &&
                   nonempty + (rlen(d, e) > 0) <= plen(d, f) + 1) {
                nonempty += rlen(d, e) > 0;
                n += branch_len(d, e++);
            }
        (*start)[np++] = f;
        *longest = n > *longest ? (int)n : *longest;
    }
    (*start)[np] = R;
    return np;
}

/* Tokens of packs [k0, k1) of a batch padded to its longest: packs x T (global response e
 * is d's response e - off). */
static double batch_tokens(const PrefData *d, const int64_t *start, int64_t k0, int64_t k1, int64_t off, int *T)
{
    int64_t Tb = 1;
    for (int64_t k = k0; k < k1; k++) {
        int64_t n = first_len(d, start[k] - off);
        for (int64_t e = start[k] + 1; e < start[k + 1]; e++)
            n += branch_len(d, e - off);
        Tb = n > Tb ? n : Tb;
    }
    if (T)
        *T = (int)Tb;
    return (double)(k1 - k0) * (double)Tb;
}

int reflogp_seq_len(const PrefData *d)
{
    int64_t *start;
    int longest;
    make_packs(d, &start, &longest);
    free(start);
    return longest;
}

double reflogp_pass_flops(const PrefData *d, int batch, const Gpt *m)
{
    int64_t *start, np;
    int longest;
    np = make_packs(d, &start, &longest);
    double tokens = 0, tok_t = 0, scored = 0;
    for (int64_t k = 0; k < np; k += batch) {
        int T;
        double n = batch_tokens(d, start, k, k + batch < np ? k + batch : np, 0, &T);
        tokens += n;
        tok_t += n * T;
    }
    for (int64_t e = 0; e < d->n_responses; e++)
        scored += (double)rlen(d, e);
    free(start);
    return gpt_flops_forward(m, tokens, tok_t, scored);
}

/* log pi(y | x) of the responses of packs [k0, k1) (global pack bounds `start`): response
 * e of the pass is response e - off of d (d is the dataset itself with off = 0, or a gather
 * of a run of responses starting at off); values into vals[e - off]. */
static void compute_packs(Gpt *m, const PrefData *d, const int64_t *start, int64_t k0, int64_t k1, int64_t off,
                          int batch, double *vals)
{
    if (batch > m->max_batch)
        batch = m->max_batch;
    size_t NT = (size_t)batch * (size_t)m->max_seq, NR = NT + (size_t)batch;
    int32_t *tok = xmalloc(sizeof(int32_t) * NT), *pos = xmalloc(sizeof(int32_t) * NT);
    int32_t *skip = xmalloc(sizeof(int32_t) * 2 * NT), *row = xmalloc(sizeof(int32_t) * NR);
    int32_t *tgt = xmalloc(sizeof(int32_t) * NR);
    int64_t *owner = xmalloc(sizeof(int64_t) * NR);
    double *logp = xmalloc(sizeof(double) * NR);
    for (int64_t b0 = k0; b0 < k1; b0 += batch) {
        int64_t b1 = b0 + batch < k1 ? b0 + batch : k1;
        int T;
        batch_tokens(d, start, b0, b1, off, &T);
        if (T > m->max_seq)
            die("reflogp: a pack of %d tokens does not fit the model's %d (allocate reflogp_seq_len)", T, m->max_seq);
        int B = (int)(b1 - b0), nr = 0;
        size_t BT = (size_t)B * (size_t)T;
        memset(tok, 0, sizeof(int32_t) * BT);
        memset(pos, 0, sizeof(int32_t) * BT);
        memset(skip, 0, sizeof(int32_t) * 2 * BT);
        for (int b = 0; b < B; b++) {
            int64_t f = start[b0 + b] - off, l = start[b0 + b + 1] - off, p = d->response_prompt[f];
            const int32_t *pt = d->prompt_tokens + d->prompt_offsets[p];
            int lp = (int)(d->prompt_offsets[p + 1] - d->prompt_offsets[p]), base = b * T, no_prompt = lp == 0;
            for (int64_t e = f; e < l; e++) {
                vals[e] = 0;
                if (single_len(d, e) > m->d.context)
                    die_user("response %lld with its prompt is %lld tokens, more than the model takes (%d)",
                             (long long)(e + off), (long long)single_len(d, e) + 1, m->d.context + 1);
            }
            int64_t scored = 0;
            for (int64_t e = f; e < l; e++)
                scored += rlen(d, e);
            if (scored == 0 || (no_prompt && scored == 1))
                continue; /* nothing to score (and nothing to feed: the prompt may not fit alone) */
            if (no_prompt) { /* alone: its first token is the context of the rest, as unpacked */
                pt = d->response_tokens + d->response_offsets[f];
                lp = 1;
            }
            int at = lp;
            for (int i = 0; i < lp; i++) {
                tok[base + i] = pt[i];
                pos[base + i] = i;
            }
            for (int64_t e = f; e < l; e++) {
                const int32_t *yt = d->response_tokens + d->response_offsets[e];
                int ly = (int)(d->response_offsets[e + 1] - d->response_offsets[e]);
                if (no_prompt) { /* y[0] is the prompt */
                    yt++;
                    ly--;
                }
                int lb = ly > 0 ? ly - 1 : 0;
                for (int i = 0; i < lb; i++) {
                    tok[base + at + i] = yt[i];
                    pos[base + at + i] = lp + i;
                    skip[2 * (base + at + i)] = e > f ? lp : 0; /* hide the branches before */
                    skip[2 * (base + at + i) + 1] = e > f ? at : 0;
                }
                for (int k = 0; k < ly; k++) {
                    row[nr] = base + (k == 0 ? lp - 1 : at + k - 1);
                    tgt[nr] = yt[k];
                    owner[nr++] = e;
                }
                at += lb;
            }
        }
        gpt_forward_rows(m, tok, pos, skip, B, T, nr, row, tgt, logp);
        for (int r = 0; r < nr; r++)
            vals[owner[r]] += logp[r];
    }
    free(tok);
    free(pos);
    free(skip);
    free(row);
    free(tgt);
    free(owner);
    free(logp);
}

/* This rank's packs [*k0, *k1): whole batches of `batch` packs of the global order (so every
 * batch, its padding and its bits are the same whatever the number of ranks), a contiguous
 * run of them holding about 1/world of the tokens, so ranks get equal work and a sharded
 * rank reads one region of the file. */
static void my_packs(const PrefData *d, const int64_t *start, int64_t np, int rank, int world, int batch, int64_t *k0,
                     int64_t *k1)
{
    int64_t nbat = (np + batch - 1) / batch;
    double *len = xmalloc(sizeof(double) * (size_t)(nbat ? nbat : 1)), total = 0;
    for (int64_t k = 0; k < nbat; k++) {
        len[k] = batch_tokens(d, start, k * batch, (k + 1) * batch < np ? (k + 1) * batch : np, 0, NULL);
        total += len[k];
    }
    double lo = total * rank / world, hi = total * (rank + 1) / world, at = 0;
    *k0 = *k1 = -1;
    for (int64_t k = 0; k < nbat; k++) {
        double mid = at + len[k] / 2; /* a batch belongs to the rank whose share holds its middle */
        if (mid >= lo && (mid < hi || rank == world - 1)) {
            if (*k0 < 0)
                *k0 = k * batch;
            *k1 = (k + 1) * batch < np ? (k + 1) * batch : np;
        }
        at += len[k];
    }
    if (*k0 < 0)
        *k0 = *k1 = 0;
    free(len);
}

void reflogp_compute(Gpt *m, const PrefData *d, int rank, int world, int batch, double *out)
{
    if (batch > m->max_batch)
        batch = m->max_batch;
    int64_t *start, np, k0, k1;
    int longest;
    np = make_packs(d, &start, &longest);
    my_packs(d, start, np, rank, world, batch, &k0, &k1);
    memset(out, 0, sizeof(double) * (size_t)d->n_responses);
    compute_packs(m, d, start, k0, k1, 0, batch, out);
    dist_allreduce_sum_f64(out, (size_t)d->n_responses);
    free(start);
}

void reflogp_compute_shard(Gpt *m, PrefShard *s, int rank, int world, int batch, double *out)
{
    if (batch > m->max_batch)
        batch = m->max_batch;
    const PrefData *d = &s->meta;
    int64_t R = d->n_responses, *start, np, k0, k1;
    int longest;
    np = make_packs(d, &start, &longest);
    my_packs(d, start, np, rank, world, batch, &k0, &k1);
    memset(out, 0, sizeof(double) * (size_t)R);
    /* gathers of whole batches of about 4096 responses, so the batches are the same as
     * without shards */
    int64_t n_ids = k1 > k0 ? start[k1] - start[k0] : 0, *iota = xmalloc(sizeof(int64_t) * (size_t)(n_ids ? n_ids : 1));
    PrefData local;
    memset(&local, 0, sizeof local);
    for (int64_t c0 = k0; c0 < k1;) {
        int64_t c1 = c0;
        while (c1 < k1 && (c1 == c0 || start[c1] - start[c0] < 4096))
            c1 = c1 + batch < k1 ? c1 + batch : k1;
        int64_t n = start[c1] - start[c0];
        for (int64_t i = 0; i < n; i++)
            iota[i] = start[c0] + i;
        char err[1024];
        if (prefshard_gather_responses(s, n, iota, &local, err, sizeof err) != 0)
            die_user("%s", err);
        /* the gather's response j is response start[c0] + j */
        compute_packs(m, &local, start, c0, c1, start[c0], batch, out + start[c0]);
        c0 = c1;
    }
    dist_allreduce_sum_f64(out, (size_t)R);
    prefdata_free(&local);
    free(start);
    free(iota);
}

int reflogp_cache_read(const char *path, const char *model_hash, const PrefData *d, double *out, char *err,
                       int errlen)
{
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(err, (size_t)errlen, "%s: cannot open to read the reference cache", path);
        return -1;
    }
    int rc = 0;
    char name[64];
    snprintf(name, sizeof name, "/ref_logp/%s", model_hash);
    if (H5Lexists(f, "/ref_logp", H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        /* list what is there, to explain a miss */
        char others[512] = "";
        if (H5Lexists(f, "/ref_logp", H5P_DEFAULT) > 0) {
            hid_t g = H5Gopen2(f, "/ref_logp", H5P_DEFAULT);
            H5G_info_t gi;
            if (g >= 0 && H5Gget_info(g, &gi) >= 0)
                for (hsize_t i = 0; i < gi.nlinks && strlen(others) < 400; i++) {
                    char nm[64];
                    if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nm, sizeof nm, H5P_DEFAULT) > 0) {
                        strcat(others, " ");
                        strcat(others, nm);
                    }
                }
            if (g >= 0)
                H5Gclose(g);
        }
        snprintf(err, (size_t)errlen, "%s: no reference log-probs for reference %s (cached for:%s)", path,
                 model_hash, *others ? others : " none");
        H5Fclose(f);
        return 0;
    }
    hsize_t dims[4];
    int64_t n = 0;
    char e2[256];
    double *v = h5u_read_array(f, name, H5T_NATIVE_DOUBLE, 1, dims, &n, e2, sizeof e2);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    char *dh = ds >= 0 ? h5u_read_attr_str(ds, "data_hash") : NULL;
    char want[17];
    reflogp_data_hash(d, want);
    if (!v) {
        snprintf(err, (size_t)errlen, "%s: %s", path, e2);
        rc = -1;
    } else if (n != d->n_responses) {
        snprintf(err, (size_t)errlen, "%s: %s has %lld values for %lld responses", path, name, (long long)n,
                 (long long)d->n_responses);
        rc = -1;
    } else if (!dh || strcmp(dh, want) != 0) {
        snprintf(err, (size_t)errlen,
                 "%s: %s was computed on other responses (data_hash %s, the file's is %s): refusing a stale cache "
                 "(delete it with h5py, or set train.ref_cache = \"off\")",
                 path, name, dh ? dh : "missing", want);
        rc = -1;
    } else {
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(v[i]) || v[i] > 1e-9) {
                snprintf(err, (size_t)errlen, "%s: %s[%lld] = %g is not a log-probability", path, name, (long long)i,
                         v[i]);
                rc = -1;
                break;
            }
        if (rc == 0) {
            memcpy(out, v, sizeof(double) * (size_t)n);
            rc = 1;
        }
    }
    free(dh);
    free(v);
    if (ds >= 0)
        H5Dclose(ds);
    H5Fclose(f);
    return rc;
}

void reflogp_cache_write(const char *path, const char *model_hash, const PrefData *d, const double *v,
                         const char *reference)
{
    h5u_init();
    char *tmp = h5u_tmp_name(path);
    util_copy_file(path, tmp, 0);
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        die_user("%s: cannot open for writing the reference cache", tmp);
    char name[64];
    snprintf(name, sizeof name, "/ref_logp/%s", model_hash);
    if (H5Lexists(f, "/ref_logp", H5P_DEFAULT) > 0 && H5Lexists(f, name, H5P_DEFAULT) > 0)
        CHECK_H5(H5Ldelete(f, name, H5P_DEFAULT));
    hsize_t dims[1] = {(hsize_t)d->n_responses};
    h5u_write_array(f, name, H5T_NATIVE_DOUBLE, 1, dims, v);
    hid_t ds = CHECK_H5(H5Dopen2(f, name, H5P_DEFAULT));
    char dh[17];
    reflogp_data_hash(d, dh);
    h5u_attr_str(ds, "data_hash", dh);
    h5u_attr_i64(ds, "n_responses", d->n_responses);
    h5u_attr_str(ds, "reference", reference ? reference : "");
    H5Dclose(ds);
    if (H5Fclose(f) < 0)
        die_user("%s: closing after writing the reference cache failed", tmp);
    h5u_commit(tmp, path);
    free(tmp);
}
