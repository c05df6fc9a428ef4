/* ckpt.c: checkpoints in HDF5 (format "prefer.checkpoint", docs/formats.md).
 *
 * Does: save the model's parameters tensor by tensor (names and shapes from the Gpt's
 * tensor table), optionally the AdamW moments in the same layout, and the training state
 * (step, adam_t, RNG stream) as root attributes; load them back bit-exactly after checking
 * the format, the model dimensions, every tensor's presence and shape, and finiteness.
 * Does not: sampler or curriculum state (later), parallel I/O (rank 0 writes, sec2 driver).
 *
 * uint64 values (rng_key, rng_counter) are stored as int64 attributes holding the same 64
 * bits: h5py shows a key >= 2^63 as a negative number; `x & (2**64-1)` recovers it.
 *
 * A load stages everything in scratch buffers and copies into the model only when every
 * check passed, so a failed load (-1) leaves the model and the optimizer untouched.
 */
#include "prefer/ckpt.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int64_t u2i(uint64_t u)
{
    int64_t i;
    memcpy(&i, &u, sizeof i);
    return i;
}

static uint64_t i2u(int64_t i)
{
    uint64_t u;
    memcpy(&u, &i, sizeof u);
    return u;
}

/* A group whose links remember creation order, so `prefer info` and h5py can list the
 * tensors in layout order rather than alphabetically. */
static void create_group(hid_t f, const char *name)
{
    hid_t gcpl = CHECK_H5(H5Pcreate(H5P_GROUP_CREATE));
    CHECK_H5(H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (g < 0)
        die("ckpt_save: cannot create group /%s", name);
    H5Gclose(g);
    H5Pclose(gcpl);
}

static void write_tensors(hid_t f, const char *group, const Gpt *m, const float *base)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
        hsize_t dims[2] = {(hsize_t)t->shape[0], t->ndim > 1 ? (hsize_t)t->shape[1] : 1};
        char ds[128];
        snprintf(ds, sizeof ds, "%s/%s", group, t->name);
        h5u_write_array(f, ds, H5T_NATIVE_FLOAT, t->ndim, dims, base + t->offset);
    }
}

static void refuse_nonfinite(const char *path, const Gpt *m, const float *base, const char *what)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
        if (!all_finite(base + t->offset, t->numel))
            die("ckpt_save %s: %s%s holds non-finite values (NaN or Inf); refusing to save "
                "(training diverged? lower train.lr or set train.grad_clip)",
                path, what, t->name);
    }
}

void ckpt_save(const char *path, const Gpt *m, const AdamW *opt, const CkptState *st,
               const char *config_text)
{
    refuse_nonfinite(path, m, m->params, "parameter ");
    if (opt) {
        if (opt->n != m->num_params)
            die("ckpt_save %s: optimizer has %zu moments, model %zu parameters", path, opt->n,
                m->num_params);
        refuse_nonfinite(path, m, opt->m, "AdamW first moment of ");
        refuse_nonfinite(path, m, opt->v, "AdamW second moment of ");
    }
    char *tmp;
    hid_t f = h5u_create_tmp(path, "checkpoint", CKPT_FORMAT, CKPT_VERSION, config_text, &tmp);
    h5u_attr_i64(f, "vocab_size", m->d.vocab_size);
    h5u_attr_i64(f, "context", m->d.context);
    h5u_attr_i64(f, "n_layer", m->d.n_layer);
    h5u_attr_i64(f, "n_head", m->d.n_head);
    h5u_attr_i64(f, "n_embd", m->d.n_embd);
    h5u_attr_i64(f, "num_params", (int64_t)m->num_params);
    h5u_attr_i64(f, "step", st ? st->step : 0);
    h5u_attr_i64(f, "adam_t", opt ? opt->t : 0);
    h5u_attr_i64(f, "rng_key", u2i(st ? st->rng_key : 0));
    h5u_attr_i64(f, "rng_counter", u2i(st ? st->rng_counter : 0));
    h5u_attr_f64(f, "bco_delta", st ? st->bco_delta : 0.0);
    h5u_attr_f64(f, "bco_count", st ? st->bco_count : 0.0);
    h5u_attr_i64(f, "cur_epoch", st ? st->cur_epoch : -1);
    h5u_attr_i64(f, "cur_start", st ? st->cur_start : 0);
    if (st && st->n_sel > 0) {
        hsize_t dims[1] = {(hsize_t)st->n_sel};
        h5u_write_array(f, "/curriculum/selected_prompts", H5T_NATIVE_INT64, 1, dims, st->sel);
    }

    create_group(f, "params");
    write_tensors(f, "params", m, m->params);
    if (opt) {
        create_group(f, "adam");
        create_group(f, "adam/m");
        create_group(f, "adam/v");
        write_tensors(f, "adam/m", m, opt->m);
        write_tensors(f, "adam/v", m, opt->v);
    }
    if (H5Fclose(f) < 0)
        die("closing %s failed (disk full?)", tmp);
    h5u_commit(tmp, path);
    free(tmp);
}

/* Open path read-only after checking it is a prefer checkpoint of a version we read.
 * Returns the file id or -1 with err. */
static hid_t open_ckpt(const char *path, char *err, int errlen)
{
    h5u_init();
    struct stat sb;
    if (stat(path, &sb) != 0) {
        util_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (!h5u_is_hdf5(path)) {
        util_seterr(err, errlen, "%s: not an HDF5 file (a prefer checkpoint is HDF5, written by `prefer train`)",
               path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        util_seterr(err, errlen, "%s: cannot open as HDF5 (corrupt, or locked by a writer?)", path);
        return -1;
    }
    if (h5u_check_header(f, path, CKPT_FORMAT, CKPT_VERSION, err, errlen) != 0) {
        H5Fclose(f);
        return -1;
    }
    return f;
}

static int read_dims(hid_t f, const char *path, GptDims *d, char *err, int errlen)
{
    static const char *names[5] = {"vocab_size", "context", "n_layer", "n_head", "n_embd"};
    int *dst[5] = {&d->vocab_size, &d->context, &d->n_layer, &d->n_head, &d->n_embd};
    for (int i = 0; i < 5; i++) {
        int64_t v;
        if (h5u_read_attr_i64(f, names[i], &v) != 0) {
            util_seterr(err, errlen, "%s: %s attribute missing or not an integer", path, names[i]);
            return -1;
        }
        if (v < 1 || v > INT_MAX) {
            util_seterr(err, errlen, "%s: %s attribute is %lld, expected a positive int", path,
                   names[i], (long long)v);
            return -1;
        }
        *dst[i] = (int)v;
    }
    return 0;
}

int ckpt_read_dims(const char *path, GptDims *d, char *err, int errlen)
{
    hid_t f = open_ckpt(path, err, errlen);
    if (f < 0)
        return -1;
    int r = read_dims(f, path, d, err, errlen);
    H5Fclose(f);
    return r;
}

static void dims_str(char *buf, size_t n, const GptDims *d)
{
    snprintf(buf, n, "vocab_size %d, context %d, n_layer %d, n_head %d, n_embd %d", d->vocab_size,
             d->context, d->n_layer, d->n_head, d->n_embd);
}

/* Read every tensor of the layout from group into stage (num_params floats), checking
 * presence, type, rank and shape; then finiteness (and v >= 0 for second moments). */
static int read_tensors(hid_t f, const char *path, const char *group, const Gpt *m, float *stage,
                        int nonneg, char *err, int errlen)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
        char ds[128];
        snprintf(ds, sizeof ds, "%s/%s", group, t->name);
        hsize_t dims[4];
        int64_t n;
        float *buf = h5u_read_array(f, ds, H5T_NATIVE_FLOAT, t->ndim, dims, &n, err, errlen);
        if (!buf)
            return -1;
        int ok = 1;
        for (int k = 0; k < t->ndim; k++)
            ok &= dims[k] == (hsize_t)t->shape[k];
        if (!ok) {
            char got[64], want[64];
            if (t->ndim == 1) {
                snprintf(got, sizeof got, "(%llu)", (unsigned long long)dims[0]);
                snprintf(want, sizeof want, "(%d)", t->shape[0]);
            } else {
                snprintf(got, sizeof got, "(%llu, %llu)", (unsigned long long)dims[0],
                         (unsigned long long)dims[1]);
                snprintf(want, sizeof want, "(%d, %d)", t->shape[0], t->shape[1]);
            }
            util_seterr(err, errlen, "%s: /%s has shape %s, the model expects %s", path, ds, got, want);
            free(buf);
            return -1;
        }
        if (!all_finite(buf, t->numel)) {
            util_seterr(err, errlen, "%s: /%s holds non-finite values (NaN or Inf)", path, ds);
            free(buf);
            return -1;
        }
        if (nonneg)
            for (size_t k = 0; k < t->numel; k++)
                if (buf[k] < 0) {
                    util_seterr(err, errlen, "%s: /%s[%zu] = %g is negative (a second moment)", path, ds,
                           k, (double)buf[k]);
                    free(buf);
                    return -1;
                }
        memcpy(stage + t->offset, buf, t->numel * sizeof(float));
        free(buf);
    }
    return 0;
}

int ckpt_load_checked(const char *path, Gpt *m, AdamW *opt, CkptState *st, char *err, int errlen)
{
    hid_t f = open_ckpt(path, err, errlen);
    if (f < 0)
        return -1;
    float *sp = NULL, *sm = NULL, *sv = NULL;
    GptDims d;
    if (read_dims(f, path, &d, err, errlen) != 0)
        goto fail;
    if (d.vocab_size != m->d.vocab_size || d.context != m->d.context ||
        d.n_layer != m->d.n_layer || d.n_head != m->d.n_head || d.n_embd != m->d.n_embd) {
        char a[160], b[160];
        dims_str(a, sizeof a, &d);
        dims_str(b, sizeof b, &m->d);
        util_seterr(err, errlen,
               "%s: the checkpoint's dims (%s) differ from the model's (%s); set model.* to "
               "match the checkpoint",
               path, a, b);
        goto fail;
    }
    CkptState s;
    int64_t rk, rc, adam_t = 0;
    if (h5u_read_attr_i64(f, "step", &s.step) != 0 || h5u_read_attr_i64(f, "rng_key", &rk) != 0 ||
        h5u_read_attr_i64(f, "rng_counter", &rc) != 0) {
        util_seterr(err, errlen, "%s: step, rng_key or rng_counter attribute missing or not an integer",
               path);
        goto fail;
    }
    s.rng_key = i2u(rk);
    s.rng_counter = i2u(rc);
    if (h5u_read_attr_f64(f, "bco_delta", &s.bco_delta) != 0)
        s.bco_delta = 0.0; /* optional: older files */
    if (h5u_read_attr_f64(f, "bco_count", &s.bco_count) != 0)
        s.bco_count = 0.0;

    int moments = opt && H5Lexists(f, "adam", H5P_DEFAULT) > 0;
    if (opt && opt->n != m->num_params) {
        util_seterr(err, errlen, "%s: optimizer has %zu moments, model %zu parameters", path, opt->n,
               m->num_params);
        goto fail;
    }
    if (moments && h5u_read_attr_i64(f, "adam_t", &adam_t) != 0) {
        util_seterr(err, errlen, "%s: adam_t attribute missing or not an integer", path);
        goto fail;
    }
    sp = xmalloc(m->num_params * sizeof(float));
    if (read_tensors(f, path, "params", m, sp, 0, err, errlen) != 0)
        goto fail;
    if (moments) {
        sm = xmalloc(m->num_params * sizeof(float));
        sv = xmalloc(m->num_params * sizeof(float));
        if (read_tensors(f, path, "adam/m", m, sm, 0, err, errlen) != 0 ||
            read_tensors(f, path, "adam/v", m, sv, 1, err, errlen) != 0)
            goto fail;
    }
    s.sel = NULL;
    s.n_sel = 0;
    if (h5u_read_attr_i64(f, "cur_epoch", &s.cur_epoch) != 0)
        s.cur_epoch = -1;
    if (h5u_read_attr_i64(f, "cur_start", &s.cur_start) != 0)
        s.cur_start = 0;
    if (st && H5Lexists(f, "curriculum", H5P_DEFAULT) > 0 &&
        H5Lexists(f, "/curriculum/selected_prompts", H5P_DEFAULT) > 0) {
        hsize_t dims[4];
        char e2[256];
        s.sel = h5u_read_array(f, "/curriculum/selected_prompts", H5T_NATIVE_INT64, 1, dims, &s.n_sel, e2, sizeof e2);
        if (!s.sel) {
            util_seterr(err, errlen, "%s: %s", path, e2);
            goto fail;
        }
    }
    /* Every check passed: commit. */
    memcpy(m->params, sp, m->num_params * sizeof(float));
    if (moments) {
        memcpy(opt->m, sm, m->num_params * sizeof(float));
        memcpy(opt->v, sv, m->num_params * sizeof(float));
        opt->t = adam_t;
    }
    if (st)
        *st = s;
    free(sp);
    free(sm);
    free(sv);
    H5Fclose(f);
    return 0;

fail:
    free(sp);
    free(sm);
    free(sv);
    H5Fclose(f);
    return -1;
}

void ckpt_load(const char *path, Gpt *m, AdamW *opt, CkptState *st)
{
    char err[1024];
    if (ckpt_load_checked(path, m, opt, st, err, sizeof err) != 0)
        die_user("%s", err);
}

void ckpt_load_model(const char *path, int max_batch, int max_seq, int pack_seq, Gpt *m)
{
    GptDims d;
    char err[1024];
    if (ckpt_read_dims(path, &d, err, sizeof err) != 0)
        die_user("%s", err);
    int T = max_seq < d.context ? max_seq : d.context;
    gpt_init_infer(m, &d, max_batch, pack_seq > T ? pack_seq : T);
    ckpt_load(path, m, NULL, NULL);
}
