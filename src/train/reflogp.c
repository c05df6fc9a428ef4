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

/* log pi(y | x) of responses ids[0..n) of d into vals[0..n), `batch` sequences per forward. */
static void compute_ids(Gpt *m, const PrefData *d, const int64_t *idlist, int64_t n, int batch, double *vals)
{
    int T = m->max_seq;
    if (batch > m->max_batch)
        batch = m->max_batch;
    size_t NT = (size_t)batch * T;
    int32_t *tok = xmalloc(sizeof(int32_t) * NT), *tgt = xmalloc(sizeof(int32_t) * NT);
    uint8_t *mask = xmalloc(NT);
    double *seq = xmalloc(sizeof(double) * batch);
    for (int64_t i0 = 0; i0 < n; i0 += batch) {
        int B = (int)(n - i0 < batch ? n - i0 : batch), Tb = 1;
        const int64_t *ids = idlist + i0;
        for (int b = 0; b < B; b++) {
            int64_t e = ids[b], p = d->response_prompt[e];
            int len = (int)((d->prompt_offsets[p + 1] - d->prompt_offsets[p]) + (d->response_offsets[e + 1] - d->response_offsets[e]));
            if (len - 1 > T)
                die_user("response %lld with its prompt is %d tokens, more than the reference model takes (%d)",
                         (long long)e, len, T + 1);
            Tb = len - 1 > Tb ? len - 1 : Tb;
        }
        size_t BT = (size_t)(unsigned)B * (unsigned)Tb;
        memset(tok, 0, sizeof(int32_t) * BT);
        memset(tgt, 0, sizeof(int32_t) * BT);
        memset(mask, 0, BT);
        for (int b = 0; b < B; b++) {
            int64_t e = ids[b], p = d->response_prompt[e];
            const int32_t *pt = d->prompt_tokens + d->prompt_offsets[p];
            const int32_t *rt = d->response_tokens + d->response_offsets[e];
            int lp = (int)(d->prompt_offsets[p + 1] - d->prompt_offsets[p]);
            int len = lp + (int)(d->response_offsets[e + 1] - d->response_offsets[e]);
            for (int i = 0; i + 1 < len; i++) {
                tok[(size_t)b * Tb + i] = i < lp ? pt[i] : rt[i - lp];
                tgt[(size_t)b * Tb + i] = i + 1 < lp ? pt[i + 1] : rt[i + 1 - lp];
                mask[(size_t)b * Tb + i] = i + 1 >= lp;
            }
        }
        gpt_forward(m, tok, tgt, mask, B, Tb, NULL, seq, NULL);
        memcpy(vals + i0, seq, sizeof(double) * (size_t)B);
    }
    free(tok);
    free(tgt);
    free(mask);
    free(seq);
}

/* This rank's responses: whole batches [k*batch, (k+1)*batch) of the global response order
 * (so every batch, its padding and its bits are the same whatever the number of ranks),
 * a contiguous run of them holding about 1/world of the tokens (prompt + response), so
 * ranks get equal work and a sharded rank reads one region of the file. */
static int64_t my_ids(const PrefData *d, int rank, int world, int batch, int64_t **ids)
{
    int64_t R = d->n_responses, nbat = (R + batch - 1) / batch, n = 0;
    double *len = xmalloc(sizeof(double) * (size_t)(nbat ? nbat : 1)), total = 0;
    for (int64_t k = 0; k < nbat; k++) {
        len[k] = 0;
        for (int64_t e = k * batch; e < R && e < (k + 1) * batch; e++)
            len[k] += (double)((d->prompt_offsets[d->response_prompt[e] + 1] - d->prompt_offsets[d->response_prompt[e]]) +
                               (d->response_offsets[e + 1] - d->response_offsets[e]));
        total += len[k];
    }
    double lo = total * rank / world, hi = total * (rank + 1) / world, at = 0;
    *ids = xmalloc(sizeof(int64_t) * (size_t)(R ? R : 1));
    for (int64_t k = 0; k < nbat; k++) {
        double mid = at + len[k] / 2; /* a batch belongs to the rank whose share holds its middle */
        if (mid >= lo && (mid < hi || rank == world - 1))
            for (int64_t e = k * batch; e < R && e < (k + 1) * batch; e++)
                (*ids)[n++] = e;
        at += len[k];
    }
    free(len);
    return n;
}

void reflogp_compute(Gpt *m, const PrefData *d, int rank, int world, int batch, double *out)
{
    if (batch > m->max_batch)
        batch = m->max_batch;
    int64_t *ids, n = my_ids(d, rank, world, batch, &ids);
    double *vals = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    compute_ids(m, d, ids, n, batch, vals);
    memset(out, 0, sizeof(double) * (size_t)d->n_responses);
    for (int64_t i = 0; i < n; i++)
        out[ids[i]] = vals[i];
    dist_allreduce_sum_f64(out, (size_t)d->n_responses);
    free(ids);
    free(vals);
}

void reflogp_compute_shard(Gpt *m, PrefShard *s, int rank, int world, int batch, double *out)
{
    if (batch > m->max_batch)
        batch = m->max_batch;
    int64_t R = s->meta.n_responses, *ids, n = my_ids(&s->meta, rank, world, batch, &ids);
    /* gathers of whole batches, so compute_ids forms the same batches as without shards */
    int64_t chunk = 4096 / batch > 0 ? (4096 / batch) * batch : batch, *iota = xmalloc(sizeof(int64_t) * (size_t)chunk);
    double *vals = xmalloc(sizeof(double) * (size_t)chunk);
    for (int64_t i = 0; i < chunk; i++)
        iota[i] = i;
    PrefData local;
    memset(&local, 0, sizeof local);
    memset(out, 0, sizeof(double) * (size_t)R);
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int64_t k = n - i0 < chunk ? n - i0 : chunk;
        char err[1024];
        if (prefshard_gather_responses(s, k, ids + i0, &local, err, sizeof err) != 0)
            die_user("%s", err);
        compute_ids(m, &local, iota, k, batch, vals);
        for (int64_t i = 0; i < k; i++)
            out[ids[i0 + i]] = vals[i];
    }
    dist_allreduce_sum_f64(out, (size_t)R);
    prefdata_free(&local);
    free(ids);
    free(iota);
    free(vals);
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
