/* hf.c: Hugging Face GPT-2 checkpoints: config.json and model.safetensors, parsed from
 * memory and written to files.
 *
 * Does: parse config.json (jansson) into model dims, refusing configs whose arithmetic
 * prefer does not reproduce; validate a safetensors image (header length, JSON header,
 * dtypes, shapes, data_offsets tiling the data) before touching the data, map GPT-2's
 * tensor names and Conv1D (in, out) layout onto prefer's parameter layout (gpt.h),
 * converting F16/BF16 to float; write config.json text and a safetensors file from a model.
 * Does not: open or map input files (hf_cmd.c does, and names the files), sharded
 * checkpoints, PyTorch pickles, or the tokenizer files.
 *
 * safetensors (https://github.com/huggingface/safetensors, "Format"): an unsigned 64-bit
 * little-endian header length N, N bytes of a JSON object {name: {"dtype", "shape",
 * "data_offsets": [begin, end]}, "__metadata__": {str: str}} (may end in spaces), then the
 * data; offsets are relative to the start of the data, tensors are row-major,
 * little-endian, and their ranges tile the data exactly (the reference implementation
 * refuses gaps, overlaps and trailing bytes).
 */
#include "prefer/hf.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hf.c copies little-endian safetensors data with memcpy: a big-endian host needs byte swaps"
#endif

/* The reference implementation's limit on the JSON header (100 MB). */
#define HF_MAX_HEADER ((uint64_t)100 << 20)
#define HF_MAX_DIMS 8

/* ------------------------------------------------------------------ config.json */

/* Integer key: 0 and *out when present, 1 when absent or null, -1 (err) when not an
 * integer in [lo, hi]. */
static int cfg_int(json_t *root, const char *key, long long lo, long long hi, int *out, char *err, int errlen)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 1;
    if (!json_is_integer(v)) {
        util_seterr(err, errlen, "\"%s\" must be an integer", key);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        util_seterr(err, errlen, "\"%s\" = %lld is outside [%lld, %lld]", key, x, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* Boolean key that must have value `want` when present. */
static int cfg_bool_is(json_t *root, const char *key, int want, const char *why, char *err, int errlen)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        util_seterr(err, errlen, "\"%s\" must be true or false", key);
        return -1;
    }
    if (json_is_true(v) != want) {
        util_seterr(err, errlen, "\"%s\" is %s: %s", key, want ? "false" : "true", why);
        return -1;
    }
    return 0;
}

int hf_parse_config(const char *text, size_t n, GptDims *d, char *err, int errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        util_seterr(err, errlen, "not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        util_seterr(err, errlen, "not a JSON object");
        goto out;
    }
    json_t *v = json_object_get(root, "model_type");
    if (v && !(json_is_string(v) && !strcmp(json_string_value(v), "gpt2"))) {
        util_seterr(err, errlen, "\"model_type\" is %s, expected \"gpt2\" (prefer imports GPT-2 models only)",
               json_is_string(v) ? json_string_value(v) : "not a string");
        goto out;
    }
    /* GPT2Config's default activation is gelu_new; gelu_pytorch_tanh is the same function. */
    v = json_object_get(root, "activation_function");
    if (v) {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (!s || (strcmp(s, "gelu_new") && strcmp(s, "gelu_pytorch_tanh"))) {
            util_seterr(err, errlen,
                   "\"activation_function\" is \"%s\": prefer's GPT-2 uses GELU in its tanh approximation "
                   "(\"gelu_new\") only",
                   s ? s : "(not a string)");
            goto out;
        }
    }
    v = json_object_get(root, "layer_norm_epsilon");
    if (v) {
        if (!json_is_number(v)) {
            util_seterr(err, errlen, "\"layer_norm_epsilon\" must be a number");
            goto out;
        }
        double eps = json_number_value(v);
        if (fabs(eps - 1e-5) > 1e-12) {
            util_seterr(err, errlen, "\"layer_norm_epsilon\" is %g: prefer's LayerNorm uses 1e-5 only", eps);
            goto out;
        }
    }
    if (cfg_bool_is(root, "tie_word_embeddings", 1, "prefer ties the LM head to the token embedding", err,
                    errlen) != 0 ||
        cfg_bool_is(root, "scale_attn_weights", 1, "prefer scales attention scores by 1/sqrt(head size)", err,
                    errlen) != 0 ||
        cfg_bool_is(root, "scale_attn_by_inverse_layer_idx", 0,
                    "prefer does not scale attention by 1/(layer index + 1)", err, errlen) != 0)
        goto out;

    static const struct {
        const char *key;
        long long lo, hi;
    } dims[4] = {{"vocab_size", 2, 16777216}, {"n_layer", 1, 256}, {"n_head", 1, 1024}, {"n_embd", 1, 16384}};
    int *dst[4] = {&d->vocab_size, &d->n_layer, &d->n_head, &d->n_embd};
    for (int i = 0; i < 4; i++) {
        int r = cfg_int(root, dims[i].key, dims[i].lo, dims[i].hi, dst[i], err, errlen);
        if (r < 0)
            goto out;
        if (r > 0) {
            util_seterr(err, errlen, "\"%s\" is missing", dims[i].key);
            goto out;
        }
    }
    int r = cfg_int(root, "n_positions", 1, 1048576, &d->context, err, errlen);
    if (r > 0)
        r = cfg_int(root, "n_ctx", 1, 1048576, &d->context, err, errlen);
    if (r < 0)
        goto out;
    if (r > 0) {
        util_seterr(err, errlen, "\"n_positions\" (or \"n_ctx\") is missing");
        goto out;
    }
    if (d->n_embd % d->n_head != 0) {
        util_seterr(err, errlen, "\"n_embd\" = %d is not a multiple of \"n_head\" = %d", d->n_embd, d->n_head);
        goto out;
    }
    int inner = 0;
    r = cfg_int(root, "n_inner", 1, INT_MAX, &inner, err, errlen);
    if (r < 0)
        goto out;
    if (r == 0 && inner != 4 * d->n_embd) {
        util_seterr(err, errlen, "\"n_inner\" = %d: prefer's MLP is 4 * n_embd = %d wide", inner, 4 * d->n_embd);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

char *hf_config_json(const GptDims *d)
{
    json_t *o = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("GPT2LMHeadModel"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string("gpt2"));
    json_object_set_new(o, "activation_function", json_string("gelu_new"));
    json_object_set_new(o, "layer_norm_epsilon", json_real(1e-5));
    json_object_set_new(o, "vocab_size", json_integer(d->vocab_size));
    json_object_set_new(o, "n_positions", json_integer(d->context));
    json_object_set_new(o, "n_ctx", json_integer(d->context));
    json_object_set_new(o, "n_embd", json_integer(d->n_embd));
    json_object_set_new(o, "n_layer", json_integer(d->n_layer));
    json_object_set_new(o, "n_head", json_integer(d->n_head));
    json_object_set_new(o, "n_inner", json_null());
    /* GPT-2's tokenizer: <|endoftext|> = 50256 is both; another vocabulary's ids are unknown here. */
    json_t *special = d->vocab_size == 50257 ? json_integer(50256) : json_null();
    json_object_set_new(o, "bos_token_id", json_incref(special));
    json_object_set_new(o, "eos_token_id", special);
    json_object_set_new(o, "tie_word_embeddings", json_true());
    json_object_set_new(o, "scale_attn_weights", json_true());
    json_object_set_new(o, "scale_attn_by_inverse_layer_idx", json_false());
    json_object_set_new(o, "reorder_and_upcast_attn", json_false());
    json_object_set_new(o, "attn_pdrop", json_real(0.1));
    json_object_set_new(o, "embd_pdrop", json_real(0.1));
    json_object_set_new(o, "resid_pdrop", json_real(0.1));
    json_object_set_new(o, "initializer_range", json_real(0.02));
    json_object_set_new(o, "summary_activation", json_null());
    json_object_set_new(o, "summary_first_dropout", json_real(0.1));
    json_object_set_new(o, "summary_proj_to_labels", json_true());
    json_object_set_new(o, "summary_type", json_string("cls_index"));
    json_object_set_new(o, "summary_use_proj", json_true());
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    json_object_set_new(o, "use_cache", json_true());
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    json_decref(o);
    if (!s)
        die("hf_config_json: out of memory");
    char *r = xasprintf("%s\n", s);
    free(s);
    return r;
}

/* ------------------------------------------------------------------ safetensors in */

typedef struct {
    const char *name; /* header key (owned by the JSON) */
    const char *dtype;
    int esize;        /* bytes per element */
    int ndim;
    int64_t shape[HF_MAX_DIMS];
    uint64_t begin, end; /* into the data */
    int model;        /* index into m->tensors, -1 = ignored buffer, -2 = lm_head */
} StEntry;

static const struct {
    const char *name;
    int size;
} dtypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
              {"I16", 2}, {"I8", 1},  {"U64", 8}, {"U32", 4},  {"U16", 2}, {"U8", 1},
              {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

static int dtype_size(const char *s)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(s, dtypes[i].name))
            return dtypes[i].size;
    return 0;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, f = h & 1023, bits;
    if (e == 0) {
        if (f == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            e = 127 - 15 + 1;
            while (!(f & 1024)) {
                f <<= 1;
                e--;
            }
            f &= 1023;
            bits = sign | (e << 23) | (f << 13);
        }
    } else if (e == 31) {
        bits = sign | 0x7f800000u | (f << 13);
    } else {
        bits = sign | ((e - 15 + 127) << 23) | (f << 13);
    }
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static float read_elem(const uint8_t *p, const char *dtype)
{
    if (dtype[0] == 'F' && dtype[1] == '3') { /* F32 */
        float x;
        memcpy(&x, p, sizeof x);
        return x;
    }
    uint16_t h;
    memcpy(&h, p, sizeof h);
    if (dtype[0] == 'B') { /* BF16 */
        uint32_t bits = (uint32_t)h << 16;
        float x;
        memcpy(&x, &bits, sizeof x);
        return x;
    }
    return half_to_float(h); /* F16 */
}

/* Hugging Face name of tensor t of the layout ("wte" -> "wte.weight"). */
static void hf_name(const GptTensor *t, char *out, size_t n)
{
    if (!strcmp(t->name, "wte") || !strcmp(t->name, "wpe"))
        snprintf(out, n, "%s.weight", t->name);
    else
        snprintf(out, n, "%s", t->name);
}

/* Conv1D weights (every 2-D tensor but the embeddings) are (in, out) in GPT-2's files. */
static int is_conv1d(const GptTensor *t) { return t->ndim == 2 && !t->is_embedding; }

/* 1 if s is "h.<digits>.<rest>" with rest equal to one of the ignored buffers. */
static int is_attn_buffer(const char *s)
{
    if (strncmp(s, "h.", 2) != 0)
        return 0;
    s += 2;
    if (*s < '0' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    return !strcmp(s, ".attn.bias") || !strcmp(s, ".attn.masked_bias");
}

static void shape_str(char *buf, size_t n, const int64_t *shape, int ndim)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Read one header entry's dtype, shape and offsets, checking them against the data size. */
static int parse_entry(const char *key, json_t *v, uint64_t data_len, StEntry *e, char *err, int errlen)
{
    memset(e, 0, sizeof *e);
    e->name = key;
    if (!json_is_object(v)) {
        util_seterr(err, errlen, "tensor \"%s\": header entry is not a JSON object", key);
        return -1;
    }
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off)) {
        util_seterr(err, errlen, "tensor \"%s\": needs \"dtype\" (string), \"shape\" and \"data_offsets\" (arrays)", key);
        return -1;
    }
    e->dtype = json_string_value(dt);
    e->esize = dtype_size(e->dtype);
    if (!e->esize) {
        util_seterr(err, errlen, "tensor \"%s\": unknown dtype \"%s\"", key, e->dtype);
        return -1;
    }
    size_t nd = json_array_size(sh);
    if (nd > HF_MAX_DIMS) {
        util_seterr(err, errlen, "tensor \"%s\": %zu dimensions (at most %d)", key, nd, HF_MAX_DIMS);
        return -1;
    }
    e->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *x = json_array_get(sh, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0) {
            util_seterr(err, errlen, "tensor \"%s\": shape[%zu] is not a non-negative integer", key, i);
            return -1;
        }
        e->shape[i] = json_integer_value(x);
        uint64_t s = (uint64_t)e->shape[i];
        if (s && numel > UINT64_MAX / s)
            overflow = 1;
        else
            numel *= s;
    }
    json_t *b = json_array_get(off, 0), *en = json_array_get(off, 1);
    if (json_array_size(off) != 2 || !json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < 0) {
        util_seterr(err, errlen, "tensor \"%s\": data_offsets must be two non-negative integers [begin, end]", key);
        return -1;
    }
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(en);
    if (e->begin > e->end || e->end > data_len) {
        util_seterr(err, errlen,
               "tensor \"%s\": data_offsets [%llu, %llu] out of range: the data is %llu bytes (file truncated?)",
               key, (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
        return -1;
    }
    if (overflow || numel > UINT64_MAX / (uint64_t)e->esize || numel * (uint64_t)e->esize != e->end - e->begin) {
        char s[160], need[32];
        shape_str(s, sizeof s, e->shape, e->ndim);
        if (overflow || numel > UINT64_MAX / (uint64_t)e->esize)
            snprintf(need, sizeof need, "more than 2^64");
        else
            snprintf(need, sizeof need, "%llu", (unsigned long long)(numel * (uint64_t)e->esize));
        util_seterr(err, errlen, "tensor \"%s\": shape %s of %s needs %s bytes, data_offsets give %llu", key, s,
               e->dtype, need, (unsigned long long)(e->end - e->begin));
        return -1;
    }
    return 0;
}

static int cmp_begin(const void *pa, const void *pb)
{
    const StEntry *a = *(const StEntry *const *)pa, *b = *(const StEntry *const *)pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    return a->end < b->end ? -1 : a->end > b->end;
}

/* The ranges, in order of begin, must tile [0, data_len). */
static int check_tiling(StEntry *e, size_t n, uint64_t data_len, char *err, int errlen)
{
    StEntry **o = xmalloc(sizeof(StEntry *) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        o[i] = &e[i];
    qsort(o, n, sizeof *o, cmp_begin);
    uint64_t at = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (o[i]->begin != at) {
            util_seterr(err, errlen, "tensor \"%s\": data_offsets begin at %llu, %s (tensors must tile the data)",
                   o[i]->name, (unsigned long long)o[i]->begin,
                   o[i]->begin > at ? "leaving a gap after the previous tensor" : "overlapping the previous tensor");
            rc = -1;
        }
        at = o[i]->end;
    }
    if (rc == 0 && at != data_len) {
        util_seterr(err, errlen, "the tensors cover %llu bytes of data, the file has %llu after the header",
               (unsigned long long)at, (unsigned long long)data_len);
        rc = -1;
    }
    free(o);
    return rc;
}

/* Which model tensor an entry is: its index, -1 for an ignored buffer, -2 for the LM head;
 * -3 with err for anything else. names: the model tensors' HF names. */
static int classify(const Gpt *m, char (*names)[64], const char *key, char *err, int errlen)
{
    const char *s = key;
    if (!strncmp(s, "transformer.", 12))
        s += 12;
    if (!strcmp(s, "lm_head.weight") && s == key)
        return -2;
    if (is_attn_buffer(s))
        return -1;
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(s, names[i]))
            return i;
    util_seterr(err, errlen,
           "tensor \"%s\" is not part of a GPT-2 with n_layer %d (does config.json belong to this "
           "model.safetensors? prefer imports GPT2Model / GPT2LMHeadModel weights only)",
           key, m->d.n_layer);
    return -3;
}

static int check_dtype_shape(const Gpt *m, const StEntry *e, char *err, int errlen)
{
    const GptTensor *t = e->model >= 0 ? &m->tensors[e->model] : &m->tensors[0]; /* lm_head: as wte */
    if (strcmp(e->dtype, "F32") && strcmp(e->dtype, "F16") && strcmp(e->dtype, "BF16")) {
        util_seterr(err, errlen, "tensor \"%s\": dtype %s is not supported (F32, F16 or BF16)", e->name, e->dtype);
        return -1;
    }
    int64_t want[2];
    int tr = e->model >= 0 && is_conv1d(t);
    want[0] = tr ? t->shape[1] : t->shape[0];
    want[1] = tr ? t->shape[0] : t->shape[1];
    int ok = e->ndim == t->ndim;
    for (int k = 0; ok && k < t->ndim; k++)
        ok = e->shape[k] == want[k];
    if (!ok) {
        char got[160], exp[160];
        shape_str(got, sizeof got, e->shape, e->ndim);
        shape_str(exp, sizeof exp, want, t->ndim);
        util_seterr(err, errlen,
               "tensor \"%s\" has shape %s, expected %s%s (config: vocab_size %d, n_positions %d, n_embd %d)",
               e->name, got, exp, tr ? " (Conv1D: in, out)" : "", m->d.vocab_size, m->d.context, m->d.n_embd);
        return -1;
    }
    return 0;
}

/* Convert entry e into dst (prefer's layout for tensor t: transposed for Conv1D). */
static void convert(const StEntry *e, const uint8_t *data, const GptTensor *t, float *dst)
{
    const uint8_t *src = data + e->begin;
    size_t es = (size_t)e->esize;
    if (is_conv1d(t)) {
        size_t out = (size_t)t->shape[0], in = (size_t)t->shape[1]; /* file: (in, out) */
        for (size_t i = 0; i < in; i++)
            for (size_t o = 0; o < out; o++)
                dst[o * in + i] = read_elem(src + (i * out + o) * es, e->dtype);
    } else if (!strcmp(e->dtype, "F32")) {
        memcpy(dst, src, t->numel * sizeof(float));
    } else {
        for (size_t k = 0; k < t->numel; k++)
            dst[k] = read_elem(src + k * es, e->dtype);
    }
}

int hf_parse_safetensors(const uint8_t *buf, size_t n, Gpt *m, char *err, int errlen)
{
    if (n < 8) {
        util_seterr(err, errlen, "%zu bytes: too short for the 8-byte header length (truncated?)", n);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > n - 8) {
        util_seterr(err, errlen, "header length %llu is larger than the rest of the file (%zu bytes; truncated, or not "
               "a safetensors file?)", (unsigned long long)hlen, n - 8);
        return -1;
    }
    if (hlen > HF_MAX_HEADER || hlen < 2) {
        util_seterr(err, errlen, "header length %llu is outside [2, %llu] (not a safetensors file?)",
               (unsigned long long)hlen, (unsigned long long)HF_MAX_HEADER);
        return -1;
    }
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = n - 8 - hlen;
    json_error_t je;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        util_seterr(err, errlen, "header is not valid JSON: %s (at byte %d of the header)", je.text, je.position);
        return -1;
    }
    int rc = -1;
    StEntry *e = NULL;
    int *where = NULL;
    char(*names)[64] = NULL;
    if (!json_is_object(root)) {
        util_seterr(err, errlen, "header is not a JSON object");
        goto out;
    }
    size_t ne = 0, cap = json_object_size(root);
    e = xcalloc(cap ? cap : 1, sizeof *e);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                util_seterr(err, errlen, "\"__metadata__\" is not a JSON object");
                goto out;
            }
            continue;
        }
        if (parse_entry(key, v, data_len, &e[ne], err, errlen) != 0)
            goto out;
        ne++;
    }
    if (check_tiling(e, ne, data_len, err, errlen) != 0)
        goto out;

    /* Names -> model tensors, each exactly once. */
    where = xmalloc(sizeof(int) * (size_t)m->n_tensors);
    names = xmalloc(sizeof *names * (size_t)m->n_tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        where[i] = -1;
        hf_name(&m->tensors[i], names[i], sizeof names[i]);
    }
    int lm_head = -1;
    for (size_t k = 0; k < ne; k++) {
        e[k].model = classify(m, names, e[k].name, err, errlen);
        if (e[k].model == -3)
            goto out;
        if (e[k].model == -2)
            lm_head = (int)k;
        if (e[k].model >= 0) {
            if (where[e[k].model] >= 0) {
                util_seterr(err, errlen, "tensor \"%s\" is given twice (as \"%s\" and \"%s\")", m->tensors[e[k].model].name,
                       e[where[e[k].model]].name, e[k].name);
                goto out;
            }
            where[e[k].model] = (int)k;
        }
        if (e[k].model != -1 && check_dtype_shape(m, &e[k], err, errlen) != 0)
            goto out;
    }
    for (int i = 0; i < m->n_tensors; i++)
        if (where[i] < 0) {
            util_seterr(err, errlen, "tensor \"%s\" is missing (with or without the \"transformer.\" prefix)", names[i]);
            goto out;
        }

    /* Every structural check passed: convert. */
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
        float *dst = m->params + t->offset;
        convert(&e[where[i]], data, t, dst);
        if (!all_finite(dst, t->numel)) {
            util_seterr(err, errlen, "tensor \"%s\" holds non-finite values (NaN or Inf)", e[where[i]].name);
            goto out;
        }
    }
    if (lm_head >= 0) {
        const StEntry *h = &e[lm_head];
        const float *wte = m->params;
        size_t es = (size_t)h->esize;
        for (size_t k = 0; k < m->tensors[0].numel; k++) {
            float x = read_elem(data + h->begin + k * es, h->dtype);
            if (memcmp(&x, &wte[k], sizeof x) != 0) {
                util_seterr(err, errlen,
                       "\"lm_head.weight\" differs from \"wte.weight\" (element %zu): an untied LM head, but "
                       "prefer ties the head to the token embedding",
                       k);
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(names);
    free(where);
    free(e);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ safetensors out */

static void put_u64le(uint8_t *p, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(x >> (8 * i));
}

static void xfwrite(const void *p, size_t size, size_t n, FILE *f, const char *path)
{
    if (n && fwrite(p, size, n, f) != n)
        die("writing %s: %s (disk full?)", path, strerror(errno));
}

void hf_write_safetensors(const Gpt *m, const char *path)
{
    json_t *root = json_object(), *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    uint64_t at = 0;
    char nm[64];
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
        int tr = is_conv1d(t);
        json_t *o = json_object(), *sh = json_array(), *off = json_array();
        json_object_set_new(o, "dtype", json_string("F32"));
        if (t->ndim == 1) {
            json_array_append_new(sh, json_integer(t->shape[0]));
        } else {
            json_array_append_new(sh, json_integer(tr ? t->shape[1] : t->shape[0]));
            json_array_append_new(sh, json_integer(tr ? t->shape[0] : t->shape[1]));
        }
        json_object_set_new(o, "shape", sh);
        json_array_append_new(off, json_integer((json_int_t)at));
        at += t->numel * sizeof(float);
        json_array_append_new(off, json_integer((json_int_t)at));
        json_object_set_new(o, "data_offsets", off);
        hf_name(t, nm, sizeof nm);
        json_object_set_new(root, nm, o);
    }
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!hdr)
        die("hf_write_safetensors: out of memory");
    size_t hl = strlen(hdr), pad = (8 - (8 + hl) % 8) % 8; /* data starts 8-byte aligned */
    uint8_t len8[8];
    put_u64le(len8, hl + pad);

    char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        die_user("cannot create %s: %s", tmp, strerror(errno));
    xfwrite(len8, 1, 8, f, tmp);
    xfwrite(hdr, 1, hl, f, tmp);
    xfwrite("        ", 1, pad, f, tmp);
    free(hdr);
    float *row = NULL;
    size_t row_cap = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
        const float *src = m->params + t->offset;
        if (!is_conv1d(t)) {
            xfwrite(src, sizeof(float), t->numel, f, tmp);
            continue;
        }
        size_t out = (size_t)t->shape[0], in = (size_t)t->shape[1];
        if (out > row_cap) {
            row_cap = out;
            row = xrealloc(row, sizeof(float) * row_cap);
        }
        for (size_t k = 0; k < in; k++) { /* file row k: input channel k, every output */
            for (size_t o = 0; o < out; o++)
                row[o] = src[o * in + k];
            xfwrite(row, sizeof(float), out, f, tmp);
        }
    }
    free(row);
    if (fclose(f) != 0)
        die("closing %s: %s (disk full?)", tmp, strerror(errno));
    h5u_commit(tmp, path);
    free(tmp);
}
