/* prefdata.c: preference datasets in HDF5 (format "prefer.prefdata", docs/formats.md).
 *
 * Does: write a PrefData to a file atomically; read a whole file back, checking every
 * structural rule so that nothing downstream (sampler, batcher, model) ever sees an index
 * or token id out of range. A foreign or corrupt file is reported with the file and the
 * dataset or attribute at fault, never crashes the reader.
 * Does not: partial reads per rank, or the reference log-prob cache (later modules).
 */
#include "prefer/prefdata.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Offsets of n segments: n+1 entries from 0, never decreasing. */
static int check_offsets(const int64_t *off, int64_t n, const char *name, char *err, int errlen)
{
    if (!off) {
        util_seterr(err, errlen, "%s is missing", name);
        return -1;
    }
    if (off[0] != 0) {
        util_seterr(err, errlen, "%s[0] = %lld, expected 0 (offsets start at 0)", name,
               (long long)off[0]);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        if (off[i + 1] < off[i]) {
            util_seterr(err, errlen, "%s[%lld] = %lld is less than %s[%lld] = %lld (offsets must not decrease)",
                   name, (long long)(i + 1), (long long)off[i + 1], name, (long long)i,
                   (long long)off[i]);
            return -1;
        }
    return 0;
}

static int check_tokens(const int32_t *tok, int64_t n, int64_t vocab, const char *name, char *err,
                        int errlen)
{
    if (n > 0 && !tok) {
        util_seterr(err, errlen, "%s is missing", name);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= vocab) {
            util_seterr(err, errlen, "%s[%lld] = %d is out of range [0, %lld)", name, (long long)i,
                   tok[i], (long long)vocab);
            return -1;
        }
    return 0;
}

static int check_index(const int64_t *idx, int64_t n, int64_t limit, const char *name,
                       const char *target, char *err, int errlen)
{
    if (n > 0 && !idx) {
        util_seterr(err, errlen, "%s is missing", name);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= limit) {
            util_seterr(err, errlen, "%s[%lld] = %lld is out of range [0, %lld) (indices into %s)", name,
                   (long long)i, (long long)idx[i], (long long)limit, target);
            return -1;
        }
    return 0;
}

int prefdata_validate(const PrefData *d, char *err, int errlen)
{
    if (d->n_prompts < 0 || d->n_responses < 0 || d->n_pairs < 0) {
        util_seterr(err, errlen, "negative count (prompts %lld, responses %lld, pairs %lld)",
               (long long)d->n_prompts, (long long)d->n_responses, (long long)d->n_pairs);
        return -1;
    }
    if (d->vocab_size <= 0 || d->vocab_size > (int64_t)INT32_MAX + 1) {
        util_seterr(err, errlen, "vocab_size attribute is %lld, expected 1..2^31",
               (long long)d->vocab_size);
        return -1;
    }
    if (check_offsets(d->prompt_offsets, d->n_prompts, "/prompts/offsets", err, errlen) ||
        check_offsets(d->response_offsets, d->n_responses, "/responses/offsets", err, errlen))
        return -1;
    if (check_tokens(d->prompt_tokens, d->prompt_offsets[d->n_prompts], d->vocab_size,
                     "/prompts/tokens", err, errlen) ||
        check_tokens(d->response_tokens, d->response_offsets[d->n_responses], d->vocab_size,
                     "/responses/tokens", err, errlen))
        return -1;
    if (check_index(d->response_prompt, d->n_responses, d->n_prompts, "/responses/prompt",
                    "/prompts", err, errlen) ||
        check_index(d->pair_chosen, d->n_pairs, d->n_responses, "/pairs/chosen", "/responses", err,
                    errlen) ||
        check_index(d->pair_rejected, d->n_pairs, d->n_responses, "/pairs/rejected", "/responses",
                    err, errlen))
        return -1;
    for (int64_t i = 0; i < d->n_pairs; i++) {
        int64_t c = d->pair_chosen[i], r = d->pair_rejected[i];
        if (c == r) {
            util_seterr(err, errlen,
                   "/pairs/chosen[%lld] = /pairs/rejected[%lld] = %lld (a pair needs two different "
                   "responses)",
                   (long long)i, (long long)i, (long long)c);
            return -1;
        }
        if (d->response_prompt[c] != d->response_prompt[r]) {
            util_seterr(err, errlen,
                   "/pairs/chosen[%lld] = %lld answers prompt %lld but /pairs/rejected[%lld] = %lld "
                   "answers prompt %lld (see /responses/prompt; both must answer the same prompt)",
                   (long long)i, (long long)c, (long long)d->response_prompt[c], (long long)i,
                   (long long)r, (long long)d->response_prompt[r]);
            return -1;
        }
    }
    if (d->response_score)
        for (int64_t i = 0; i < d->n_responses; i++)
            if (!isfinite(d->response_score[i])) {
                util_seterr(err, errlen, "/responses/score[%lld] = %g is not finite", (long long)i,
                       (double)d->response_score[i]);
                return -1;
            }
    return 0;
}

void prefdata_write(const char *path, const PrefData *d, const char *config_text)
{
    char err[1024];
    if (prefdata_validate(d, err, sizeof err) != 0)
        die("prefdata_write %s: invalid data: %s", path, err);
    char *tmp;
    hid_t f = h5u_create_tmp(path, "dataset", PREFDATA_FORMAT, PREFDATA_VERSION, config_text, &tmp);
    h5u_attr_i64(f, "vocab_size", d->vocab_size);
    if (d->tokenizer)
        h5u_attr_str(f, "tokenizer", d->tokenizer);

    hsize_t np1 = (hsize_t)d->n_prompts + 1, nr = (hsize_t)d->n_responses,
            nr1 = (hsize_t)d->n_responses + 1, nn = (hsize_t)d->n_pairs,
            tp = (hsize_t)d->prompt_offsets[d->n_prompts],
            tr = (hsize_t)d->response_offsets[d->n_responses];
    h5u_write_array(f, "prompts/tokens", H5T_NATIVE_INT32, 1, &tp, d->prompt_tokens);
    h5u_write_array(f, "prompts/offsets", H5T_NATIVE_INT64, 1, &np1, d->prompt_offsets);
    h5u_write_array(f, "responses/tokens", H5T_NATIVE_INT32, 1, &tr, d->response_tokens);
    h5u_write_array(f, "responses/offsets", H5T_NATIVE_INT64, 1, &nr1, d->response_offsets);
    h5u_write_array(f, "responses/prompt", H5T_NATIVE_INT64, 1, &nr, d->response_prompt);
    if (d->response_score)
        h5u_write_array(f, "responses/score", H5T_NATIVE_FLOAT, 1, &nr, d->response_score);
    h5u_write_array(f, "pairs/chosen", H5T_NATIVE_INT64, 1, &nn, d->pair_chosen);
    h5u_write_array(f, "pairs/rejected", H5T_NATIVE_INT64, 1, &nn, d->pair_rejected);
    if (H5Fclose(f) < 0)
        die("closing %s failed (disk full?)", tmp);
    h5u_commit(tmp, path);
    free(tmp);
}

/* Read one 1-D dataset; on failure err already names file and dataset. */
#define READ1(dst, name, mtype, cnt)                                                        \
    do {                                                                                    \
        (dst) = h5u_read_array(f, (name), (mtype), 1, NULL, (cnt), err, errlen);            \
        if (!(dst))                                                                         \
            goto fail;                                                                      \
    } while (0)

int prefdata_read_checked(const char *path, int64_t vocab_limit, PrefData *d, char *err, int errlen)
{
    memset(d, 0, sizeof *d);
    h5u_init();
    hid_t f = -1;
    struct stat st;
    if (stat(path, &st) != 0) {
        util_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        util_seterr(err, errlen, "%s: is a directory, expected a prefer dataset (HDF5 file)", path);
        return -1;
    }
    if (!h5u_is_hdf5(path)) {
        util_seterr(err, errlen,
               "%s: not an HDF5 file (a prefer dataset is HDF5; make one with `prefer synth` or "
               "see docs/formats.md)",
               path);
        return -1;
    }
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        util_seterr(err, errlen, "%s: cannot open as HDF5 (corrupt, or locked by a writer?)", path);
        return -1;
    }
    if (h5u_check_header(f, path, PREFDATA_FORMAT, PREFDATA_VERSION, err, errlen) != 0)
        goto fail;
    if (h5u_read_attr_i64(f, "vocab_size", &d->vocab_size) != 0) {
        util_seterr(err, errlen, "%s: vocab_size attribute missing or not an integer", path);
        goto fail;
    }
    if (d->vocab_size <= 0 || d->vocab_size > (int64_t)INT32_MAX + 1) {
        util_seterr(err, errlen, "%s: vocab_size attribute is %lld, expected 1..2^31", path,
               (long long)d->vocab_size);
        goto fail;
    }
    if (vocab_limit > 0 && d->vocab_size > vocab_limit) {
        util_seterr(err, errlen,
               "%s: vocab_size attribute is %lld but the model's vocab_size is %lld (token ids "
               "would be out of range; use a model with model.vocab_size >= %lld)",
               path, (long long)d->vocab_size, (long long)vocab_limit, (long long)d->vocab_size);
        goto fail;
    }

    if (H5Aexists(f, "tokenizer") > 0 && !(d->tokenizer = h5u_read_attr_str(f, "tokenizer"))) {
        util_seterr(err, errlen, "%s: tokenizer attribute is not a string", path);
        goto fail;
    }

    int64_t n_ptok, n_poff, n_rtok, n_roff, n_rp, n_ch, n_rej;
    READ1(d->prompt_offsets, "prompts/offsets", H5T_NATIVE_INT64, &n_poff);
    READ1(d->prompt_tokens, "prompts/tokens", H5T_NATIVE_INT32, &n_ptok);
    READ1(d->response_offsets, "responses/offsets", H5T_NATIVE_INT64, &n_roff);
    READ1(d->response_tokens, "responses/tokens", H5T_NATIVE_INT32, &n_rtok);
    READ1(d->response_prompt, "responses/prompt", H5T_NATIVE_INT64, &n_rp);
    READ1(d->pair_chosen, "pairs/chosen", H5T_NATIVE_INT64, &n_ch);
    READ1(d->pair_rejected, "pairs/rejected", H5T_NATIVE_INT64, &n_rej);
    /* Lengths must agree before validation may index anything. */
    if (n_poff < 1 || n_roff < 1) {
        util_seterr(err, errlen, "%s: %s is empty (it holds count+1 entries, the first being 0)", path,
               n_poff < 1 ? "/prompts/offsets" : "/responses/offsets");
        goto fail;
    }
    d->n_prompts = n_poff - 1;
    d->n_responses = n_roff - 1;
    d->n_pairs = n_ch;
    if (d->prompt_offsets[d->n_prompts] != n_ptok || d->response_offsets[d->n_responses] != n_rtok) {
        int p = d->prompt_offsets[d->n_prompts] != n_ptok;
        util_seterr(err, errlen, "%s: %s ends at %lld but %s holds %lld tokens", path,
               p ? "/prompts/offsets" : "/responses/offsets",
               (long long)(p ? d->prompt_offsets[d->n_prompts] : d->response_offsets[d->n_responses]),
               p ? "/prompts/tokens" : "/responses/tokens", (long long)(p ? n_ptok : n_rtok));
        goto fail;
    }
    if (n_rp != d->n_responses) {
        util_seterr(err, errlen,
               "%s: /responses/prompt has %lld entries, expected %lld (one per response, as "
               "/responses/offsets says)",
               path, (long long)n_rp, (long long)d->n_responses);
        goto fail;
    }
    if (H5Lexists(f, "responses/score", H5P_DEFAULT) > 0) {
        int64_t n_sc;
        READ1(d->response_score, "responses/score", H5T_NATIVE_FLOAT, &n_sc);
        if (n_sc != d->n_responses) {
            util_seterr(err, errlen,
                   "%s: /responses/score has %lld entries, expected %lld (one per response, as "
                   "/responses/offsets says)",
                   path, (long long)n_sc, (long long)d->n_responses);
            goto fail;
        }
    }
    if (n_rej != n_ch) {
        util_seterr(err, errlen, "%s: /pairs/rejected has %lld entries but /pairs/chosen has %lld", path,
               (long long)n_rej, (long long)n_ch);
        goto fail;
    }
    char msg[768];
    if (prefdata_validate(d, msg, sizeof msg) != 0) {
        util_seterr(err, errlen, "%s: %s", path, msg);
        goto fail;
    }
    H5Fclose(f);
    return 0;

fail:
    if (f >= 0)
        H5Fclose(f);
    prefdata_free(d);
    return -1;
}

void prefdata_read(const char *path, int64_t vocab_limit, PrefData *d)
{
    char err[1024];
    if (prefdata_read_checked(path, vocab_limit, d, err, sizeof err) != 0)
        die_user("%s", err);
}

void prefdata_free(PrefData *d)
{
    if (!d)
        return;
    free(d->prompt_tokens);
    free(d->prompt_offsets);
    free(d->response_tokens);
    free(d->response_offsets);
    free(d->response_prompt);
    free(d->response_score);
    free(d->pair_chosen);
    free(d->pair_rejected);
    free(d->tokenizer);
    memset(d, 0, sizeof *d);
}
