/* pvar_cmd.c: `prefer pvar`: the preference variance of every prompt of a dataset, offline.
 *
 * Does: the per-response values (scores, or implicit rewards log pi - log pi_ref of two
 * checkpoints, computed by every rank for its share of the responses), PVar per prompt, the
 * ranking and an optional selection (pvar.h) on rank 0, the results file (format prefer.pvar)
 * and optionally a prefdata file of the selected prompts, and a summary: the distribution of
 * PVar, the selected against the rest and, on the synthetic task, how PVar follows the
 * prompts' hidden care (the check that PVar finds the prompts that matter).
 * Does not: train, or write anything into pvar.data (the reference cache is only read).
 *
 * Results file, format "prefer.pvar" version 1 (common root attributes as docs/formats.md):
 *   /pvar float64[P]      PVar of each prompt of pvar.data; NaN with fewer than 2 responses
 *   /rank int64[P]        0 = highest PVar (ties to the lower index); -1 = no PVar
 *   /selected uint8[P]    1 = selected (all 0 when pvar.select = "none")
 *   /h float64[R]         the value of each response: score, or log pi(y) - log pi_ref(y)
 *   /care float64[P]      the synthetic task's care of each prompt (only on that task)
 * root attributes: data, source ("model" | "scores"), beta (model) or scale (scores), mode
 * (pvar.select), frac, temperature, seed, n_prompts, n_valid, n_selected; policy and ref
 * (model).
 */
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/gpt.h"
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/pvar.h"
#include "prefer/reflogp.h"
#include "prefer/runtime.h"
#include "prefer/synth.h"
#include "prefer/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PVAR_FORMAT "prefer.pvar"
#define PVAR_VERSION 1

static void usage(void)
{
    printf("usage: prefer pvar CONFIG [--set section.key=value ...]\n\n"
           "Preference variance (PVar) of every prompt of pvar.data from its K >= 2 responses:\n"
           "  PVar = mean over ordered pairs i != j of (p_ij - 1/2)^2, p_ij = sigma(c (h_i - h_j)),\n"
           "with h_i = /responses/score and c = pvar.scale (pvar.source = \"scores\"; unscored files\n"
           "of the synthetic task use the true reward), or h_i = log pi(y_i) - log pi_ref(y_i) of\n"
           "pvar.policy and pvar.ref and c = pvar.beta (pvar.source = \"model\"; a policy equal to\n"
           "its reference gives PVar 0 everywhere). Low-PVar prompts can only give small DPO\n"
           "updates (Guo et al. 2025). pvar.select = top | bottom | random | proportional keeps\n"
           "ceil(pvar.frac * prompts with a PVar); pvar.select_out writes them, with all their\n"
           "responses and pairs, as a new prefdata file (/source_prompt: their indices in pvar.data).\n"
           "Writes pvar.out (/pvar, /rank, /selected, format prefer.pvar) and prints the PVar\n"
           "distribution and, on the synthetic task, its correlation with the prompts' care.\n"
           "source = model runs under mpirun (responses split across ranks); the results do not\n"
           "depend on the number of ranks. Keys: `prefer config --reference`.\n");
}

/* /source_prompt int64[P] of a file written by pvar.select_out, or NULL if absent. */
static int64_t *read_source_prompt(const char *path, int64_t P)
{
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return NULL;
    int64_t *v = NULL;
    if (H5Lexists(f, "/source_prompt", H5P_DEFAULT) > 0) {
        int64_t n = 0;
        char err[256];
        v = h5u_read_array(f, "/source_prompt", H5T_NATIVE_INT64, 1, NULL, &n, err, sizeof err);
        if (!v)
            warn("pvar: %s: %s; ignored", path, err);
        else if (n != P) {
            warn("pvar: %s: /source_prompt has %lld entries for %lld prompts; ignored", path, (long long)n,
                 (long long)P);
            free(v);
            v = NULL;
        }
    }
    H5Fclose(f);
    return v;
}

/* The task's prompt index of every prompt of d (src[p], or p), checked against the task's
 * tokens. Returns a fresh array, or NULL with the reason in err. */
static int64_t *task_prompt_map(const SynthTask *t, const PrefData *d, const int64_t *src, char *err, int errlen)
{
    int64_t *map = xmalloc(sizeof(int64_t) * (size_t)(d->n_prompts > 0 ? d->n_prompts : 1));
    int32_t *want = xmalloc(sizeof(int32_t) * (size_t)t->prompt_len);
    for (int64_t p = 0; p < d->n_prompts; p++) {
        map[p] = src ? src[p] : p;
        int64_t o = d->prompt_offsets[p], len = d->prompt_offsets[p + 1] - o;
        if (map[p] < 0) {
            snprintf(err, (size_t)errlen, "prompt %lld maps to %lld", (long long)p, (long long)map[p]);
            goto bad;
        }
        synth_prompt(t, map[p], want);
        if (len != t->prompt_len || memcmp(want, d->prompt_tokens + o, sizeof(int32_t) * (size_t)len) != 0) {
            snprintf(err, (size_t)errlen, "prompt %lld is not prompt %lld of the task's split", (long long)p,
                     (long long)map[p]);
            goto bad;
        }
    }
    free(want);
    return map;
bad:
    free(want);
    free(map);
    return NULL;
}

/* ---------------------------------------------------------------- statistics */

static int dbl_cmp(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

/* Quantile q of sorted x[n] (linear interpolation between order statistics). */
static double quantile(const double *x, int64_t n, double q)
{
    if (n == 0)
        return NAN;
    double pos = q * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i >= n - 1)
        return x[n - 1];
    return x[i] + (pos - (double)i) * (x[i + 1] - x[i]);
}

static double pearson(const double *x, const double *y, int64_t n)
{
    double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
    for (int64_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
        sxy += (x[i] - mx) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

typedef struct {
    double v;
    int64_t i;
} Idx;

static int idx_cmp(const void *pa, const void *pb)
{
    const Idx *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Ranks 1..n of x[n], ties sharing their mean rank, into r[n]. */
static void mid_ranks(const double *x, int64_t n, double *r)
{
    Idx *a = xmalloc(sizeof(Idx) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++)
        a[i] = (Idx){x[i], i};
    qsort(a, (size_t)n, sizeof(Idx), idx_cmp);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j + 1 < n && a[j + 1].v == a[i].v)
            j++;
        for (int64_t k = i; k <= j; k++)
            r[a[k].i] = 0.5 * (double)(i + j) + 1.0;
        i = j + 1;
    }
    free(a);
}

static double spearman(const double *x, const double *y, int64_t n)
{
    double *rx = xmalloc(sizeof(double) * (size_t)(n > 0 ? n : 1)), *ry = xmalloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    mid_ranks(x, n, rx);
    mid_ranks(y, n, ry);
    double s = pearson(rx, ry, n);
    free(rx);
    free(ry);
    return s;
}

/* ---------------------------------------------------------------- output files */

/* The prompts sel[k] (ascending) of d, renumbered 0..k-1, with all their responses (in file
 * order), scores and pairs. */
static void subset(const PrefData *d, const int64_t *sel, int64_t k, PrefData *o)
{
    int64_t P = d->n_prompts, R = d->n_responses, N = d->n_pairs;
    int64_t *pmap = xmalloc(sizeof(int64_t) * (size_t)(P > 0 ? P : 1)), *rmap = xmalloc(sizeof(int64_t) * (size_t)(R > 0 ? R : 1));
    for (int64_t p = 0; p < P; p++)
        pmap[p] = -1;
    for (int64_t j = 0; j < k; j++)
        pmap[sel[j]] = j;
    memset(o, 0, sizeof *o);
    o->vocab_size = d->vocab_size;
    o->n_prompts = k;
    o->prompt_offsets = xmalloc(sizeof(int64_t) * (size_t)(k + 1));
    int64_t tp = 0;
    for (int64_t j = 0; j < k; j++)
        tp += d->prompt_offsets[sel[j] + 1] - d->prompt_offsets[sel[j]];
    o->prompt_tokens = xmalloc(sizeof(int32_t) * (size_t)(tp > 0 ? tp : 1));
    o->prompt_offsets[0] = 0;
    for (int64_t j = 0; j < k; j++) {
        int64_t a = d->prompt_offsets[sel[j]], n = d->prompt_offsets[sel[j] + 1] - a;
        memcpy(o->prompt_tokens + o->prompt_offsets[j], d->prompt_tokens + a, sizeof(int32_t) * (size_t)n);
        o->prompt_offsets[j + 1] = o->prompt_offsets[j] + n;
    }
    int64_t nr = 0, tr = 0;
    for (int64_t r = 0; r < R; r++) {
        rmap[r] = pmap[d->response_prompt[r]] >= 0 ? nr++ : -1;
        if (rmap[r] >= 0)
            tr += d->response_offsets[r + 1] - d->response_offsets[r];
    }
    o->n_responses = nr;
    o->response_offsets = xmalloc(sizeof(int64_t) * (size_t)(nr + 1));
    o->response_tokens = xmalloc(sizeof(int32_t) * (size_t)(tr > 0 ? tr : 1));
    o->response_prompt = xmalloc(sizeof(int64_t) * (size_t)(nr > 0 ? nr : 1));
    if (d->response_score)
        o->response_score = xmalloc(sizeof(float) * (size_t)(nr > 0 ? nr : 1));
    o->response_offsets[0] = 0;
    for (int64_t r = 0; r < R; r++) {
        int64_t e = rmap[r];
        if (e < 0)
            continue;
        int64_t a = d->response_offsets[r], n = d->response_offsets[r + 1] - a;
        memcpy(o->response_tokens + o->response_offsets[e], d->response_tokens + a, sizeof(int32_t) * (size_t)n);
        o->response_offsets[e + 1] = o->response_offsets[e] + n;
        o->response_prompt[e] = pmap[d->response_prompt[r]];
        if (d->response_score)
            o->response_score[e] = d->response_score[r];
    }
    int64_t np = 0;
    for (int64_t i = 0; i < N; i++)
        np += rmap[d->pair_chosen[i]] >= 0 && rmap[d->pair_rejected[i]] >= 0;
    o->n_pairs = np;
    o->pair_chosen = xmalloc(sizeof(int64_t) * (size_t)(np > 0 ? np : 1));
    o->pair_rejected = xmalloc(sizeof(int64_t) * (size_t)(np > 0 ? np : 1));
    np = 0;
    for (int64_t i = 0; i < N; i++)
        if (rmap[d->pair_chosen[i]] >= 0 && rmap[d->pair_rejected[i]] >= 0) {
            o->pair_chosen[np] = rmap[d->pair_chosen[i]];
            o->pair_rejected[np++] = rmap[d->pair_rejected[i]];
        }
    free(pmap);
    free(rmap);
}

/* Copy root attribute `name` of src to dst if present (strings and numbers). */
static void copy_attr(hid_t src, hid_t dst, const char *name)
{
    if (H5Aexists(src, name) <= 0)
        return;
    char *s = h5u_read_attr_str(src, name);
    double v;
    if (s)
        h5u_attr_str(dst, name, s);
    else if (h5u_read_attr_f64(src, name, &v) == 0)
        h5u_attr_f64(dst, name, v);
    free(s);
}

/* pvar.select_out: the selected prompts as a prefdata file, with /source_prompt (indices
 * into pvar.data, composed with pvar.data's own /source_prompt) and, when pvar.data carries
 * the synthetic task, its attributes. Those keep synth_prompt_base: prompt p of the new file
 * is prompt source_prompt[p] (not p) of the task's split, so synth_check_prompts refuses the
 * file and nothing scores it against the wrong prompts; `prefer pvar` itself follows
 * /source_prompt. */
static void write_selection(const PreferConfig *cfg, const PrefData *d, const int64_t *sel, int64_t k,
                            const int64_t *src, const SynthTask *task, const char *text)
{
    const PvarConfig *pc = &cfg->pvar;
    PrefData o;
    subset(d, sel, k, &o);
    int64_t *orig = xmalloc(sizeof(int64_t) * (size_t)(k > 0 ? k : 1));
    for (int64_t j = 0; j < k; j++)
        orig[j] = src ? src[sel[j]] : sel[j];
    util_mkdir_parent(pc->select_out);
    char *stage = h5u_tmp_name(pc->select_out);
    prefdata_write(stage, &o, text);
    hid_t f = H5Fopen(stage, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        die("pvar: cannot reopen %s to add the selection", stage);
    hsize_t dims[1] = {(hsize_t)k};
    h5u_write_array(f, "/source_prompt", H5T_NATIVE_INT64, 1, dims, orig);
    h5u_attr_str(f, "pvar_data", pc->data);
    h5u_attr_str(f, "pvar_source", pc->source);
    h5u_attr_str(f, "pvar_select", pc->select);
    h5u_attr_f64(f, "pvar_frac", pc->frac);
    if (task) {
        synth_put_task_attrs(f, task, "pvar-selected");
        hid_t in = H5Fopen(pc->data, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (in >= 0) {
            copy_attr(in, f, "synth_pairs");
            copy_attr(in, f, "synth_label_temp");
            copy_attr(in, f, "synth_label_noise");
            H5Fclose(in);
        }
    }
    if (H5Fclose(f) < 0)
        die("pvar: closing %s failed (disk full?)", stage);
    h5u_commit(stage, pc->select_out);
    free(stage);
    say("pvar: wrote %s: %lld prompts, %lld responses, %lld pairs (/source_prompt: their indices in %s)\n",
        pc->select_out, (long long)o.n_prompts, (long long)o.n_responses, (long long)o.n_pairs, pc->data);
    free(orig);
    prefdata_free(&o);
}

static void write_results(const PreferConfig *cfg, const PrefData *d, const double *h, const double *pv,
                          const int64_t *rank, const uint8_t *selected, const double *care, int64_t n_valid,
                          int64_t n_sel, const char *text)
{
    const PvarConfig *pc = &cfg->pvar;
    int model = !strcmp(pc->source, "model");
    util_mkdir_parent(pc->out);
    char *tmp;
    hid_t f = h5u_create_tmp(pc->out, "pvar results (pvar.out)", PVAR_FORMAT, PVAR_VERSION, text, &tmp);
    h5u_attr_str(f, "data", pc->data);
    h5u_attr_str(f, "source", pc->source);
    if (model) {
        h5u_attr_f64(f, "beta", pc->beta);
        h5u_attr_str(f, "policy", pc->policy);
        h5u_attr_str(f, "ref", pc->ref);
    } else {
        h5u_attr_f64(f, "scale", pc->scale);
    }
    h5u_attr_str(f, "mode", pc->select);
    h5u_attr_f64(f, "frac", pc->frac);
    h5u_attr_f64(f, "temperature", pc->temperature);
    h5u_attr_i64(f, "seed", pc->seed);
    h5u_attr_i64(f, "n_prompts", d->n_prompts);
    h5u_attr_i64(f, "n_valid", n_valid);
    h5u_attr_i64(f, "n_selected", n_sel);
    hsize_t dp[1] = {(hsize_t)d->n_prompts}, dr[1] = {(hsize_t)d->n_responses};
    h5u_write_array(f, "/pvar", H5T_NATIVE_DOUBLE, 1, dp, pv);
    h5u_write_array(f, "/rank", H5T_NATIVE_INT64, 1, dp, rank);
    h5u_write_array(f, "/selected", H5T_NATIVE_UINT8, 1, dp, selected);
    h5u_write_array(f, "/h", H5T_NATIVE_DOUBLE, 1, dr, h);
    if (care)
        h5u_write_array(f, "/care", H5T_NATIVE_DOUBLE, 1, dp, care);
    if (H5Fclose(f) < 0)
        die_user("pvar: closing %s failed (disk full?)", tmp);
    h5u_commit(tmp, pc->out);
    free(tmp);
}

/* ---------------------------------------------------------------- the values h */

/* log pi(y) of every response under the checkpoint at path: from pvar.data's reference cache
 * when it holds an entry for this model (read by rank 0, broadcast), else computed by every
 * rank for its share. */
static void model_logps(const PvarConfig *pc, const PrefData *d, const char *path, int longest, int rank,
                        int world, double *out, char hash[17])
{
    Gpt m;
    ckpt_load_model(path, pc->batch, longest, longest, &m);
    if (d->vocab_size > m.d.vocab_size)
        die_user("pvar: %s: vocab_size %lld exceeds the model's %d (%s)", pc->data, (long long)d->vocab_size,
                 m.d.vocab_size, path);
    reflogp_model_hash(&m, hash);
    int rc = 0;
    char err[1024] = "";
    if (rank == 0)
        rc = reflogp_cache_read(pc->data, hash, d, out, err, sizeof err);
    dist_bcast(&rc, sizeof rc, 0);
    if (rc == 1) {
        dist_bcast(out, sizeof(double) * (size_t)d->n_responses, 0);
        say("pvar: log-probs of %s from the cache in %s\n", path, pc->data);
    } else {
        if (rc < 0)
            warn("pvar: %s; computing instead", err);
        double t0 = now_s();
        reflogp_compute(&m, d, rank, world, pc->batch, out);
        say("pvar: computed log-probs of %lld responses under %s (%d rank%s, %.1f s)\n", (long long)d->n_responses,
            path, world, world > 1 ? "s" : "", now_s() - t0);
    }
    gpt_free(&m);
}

/* ---------------------------------------------------------------- the command */

int cmd_pvar(int argc, char **argv)
{
    CliArgs a;
    PreferConfig cfg;
    if (cli_start(argc, argv, "pvar", usage, NULL, &a, &cfg))
        return 0;
    const PvarConfig *pc = &cfg.pvar;
    int rank = dist_rank(), world = dist_size();
    int model = !strcmp(pc->source, "model");
    double t0 = now_s();
    if (!model && rank != 0) { /* scores: nothing to share out */
        config_free(&cfg);
        return 0;
    }
    if (model)
        runtime_setup(&cfg.runtime, 0);

    PrefData d;
    prefdata_read(pc->data, 0, &d);
    int64_t P = d.n_prompts, R = d.n_responses;

    /* the synthetic task, for the cares (and the true reward of an unscored file) */
    SynthTask task;
    char err[1024] = "", why[512] = "";
    int64_t *src = rank == 0 ? read_source_prompt(pc->data, P) : NULL, *map = NULL;
    int trc = rank == 0 ? synth_task_from_file(pc->data, &task, err, sizeof err) : 1;
    if (trc < 0)
        warn("pvar: %s; no care correlation", err);
    if (trc == 0) {
        map = task_prompt_map(&task, &d, src, why, sizeof why);
        if (!map)
            snprintf(err, sizeof err, "%s: %s", pc->data, why);
    }
    int have_task = map != NULL;

    double *h = xmalloc(sizeof(double) * (size_t)(R > 0 ? R : 1));
    double coef;
    if (model) {
        int longest = 1;
        for (int64_t r = 0; r < R; r++) {
            int64_t p = d.response_prompt[r];
            int n = (int)((d.prompt_offsets[p + 1] - d.prompt_offsets[p]) + (d.response_offsets[r + 1] - d.response_offsets[r]));
            longest = n > longest ? n : longest;
        }
        double *lr = xmalloc(sizeof(double) * (size_t)(R > 0 ? R : 1));
        char hp[17], hr[17];
        longest = reflogp_seq_len(&d);
        model_logps(pc, &d, pc->policy, longest, rank, world, h, hp);
        model_logps(pc, &d, pc->ref, longest, rank, world, lr, hr);
        for (int64_t r = 0; r < R; r++)
            h[r] -= lr[r];
        free(lr);
        if (!strcmp(hp, hr))
            say("pvar: the policy and the reference are the same model (hash %s): h = 0 and PVar 0 for every "
                "prompt\n", hp);
        coef = pc->beta;
        if (rank != 0) {
            free(h);
            prefdata_free(&d);
            config_free(&cfg);
            return 0;
        }
    } else if (d.response_score) {
        for (int64_t r = 0; r < R; r++)
            h[r] = d.response_score[r];
        coef = pc->scale;
    } else if (have_task) {
        for (int64_t r = 0; r < R; r++) {
            int64_t o = d.response_offsets[r];
            h[r] = synth_reward(&task, map[d.response_prompt[r]], d.response_tokens + o, d.response_offsets[r + 1] - o);
        }
        coef = pc->scale;
        say("pvar: %s has no /responses/score: using the synthetic task's true reward\n", pc->data);
    } else {
        die_user("pvar: %s has no /responses/score and is not a file of the synthetic task (%s): score it "
                 "(prefer label), or set pvar.source = \"model\"",
                 pc->data, err);
    }

    /* rank 0 from here */
    double *pv = xmalloc(sizeof(double) * (size_t)(P > 0 ? P : 1));
    int64_t *rk = xmalloc(sizeof(int64_t) * (size_t)(P > 0 ? P : 1));
    int64_t *sel = xmalloc(sizeof(int64_t) * (size_t)(P > 0 ? P : 1));
    uint8_t *selected = xcalloc((size_t)(P > 0 ? P : 1), 1);
    pvar_all(&d, h, coef, pv);
    int64_t nv = pvar_rank(pv, P, rk), ns = 0;
    int do_select = strcmp(pc->select, "none") != 0;
    if (do_select) {
        ns = pvar_select(pv, P, pc->select, pc->frac, pc->temperature, (uint64_t)pc->seed, 0, sel);
        if (ns < 0)
            die("pvar_select refused mode %s, frac %g, temperature %g", pc->select, pc->frac, pc->temperature);
        for (int64_t j = 0; j < ns; j++)
            selected[sel[j]] = 1;
    }
    double *care = NULL;
    if (have_task) {
        care = xmalloc(sizeof(double) * (size_t)(P > 0 ? P : 1));
        for (int64_t p = 0; p < P; p++)
            care[p] = synth_care(&task, map[p]);
    }
    char *text = config_to_text(&cfg);
    write_results(&cfg, &d, h, pv, rk, selected, care, nv, ns, text);

    /* summary */
    say("pvar: %s: %lld prompts, %lld responses; PVar from %s (%s %g)\n", pc->data, (long long)P, (long long)R,
        model ? "implicit rewards log pi - log pi_ref" : "scores", model ? "beta" : "scale", coef);
    double *v = xmalloc(sizeof(double) * (size_t)(nv > 0 ? nv : 1)), *cv = xmalloc(sizeof(double) * (size_t)(nv > 0 ? nv : 1));
    double mean = 0, sum_s = 0, sum_u = 0, care_s = 0, care_u = 0;
    int64_t m = 0, n_zero = 0;
    for (int64_t p = 0; p < P; p++)
        if (isfinite(pv[p])) {
            v[m] = pv[p];
            cv[m] = care ? care[p] : 0;
            m++;
            mean += pv[p];
            n_zero += pv[p] == 0;
            if (selected[p]) {
                sum_s += pv[p];
                care_s += care ? care[p] : 0;
            } else {
                sum_u += pv[p];
                care_u += care ? care[p] : 0;
            }
        }
    if (nv < P)
        say("pvar: %lld prompt%s with fewer than 2 responses: no PVar, never selected\n", (long long)(P - nv),
            P - nv > 1 ? "s" : "");
    double rho = NAN, rs = NAN;
    if (nv > 0) {
        if (care) {
            rho = pearson(v, cv, nv);
            rs = spearman(v, cv, nv);
        }
        qsort(v, (size_t)nv, sizeof(double), dbl_cmp);
        say("pvar: PVar over %lld prompts: mean %.4g min %.4g max %.4g; quantiles 10%% %.4g 25%% %.4g 50%% %.4g "
            "75%% %.4g 90%% %.4g (at most 0.25)\n",
            (long long)nv, mean / (double)nv, v[0], v[nv - 1], quantile(v, nv, 0.10), quantile(v, nv, 0.25),
            quantile(v, nv, 0.5), quantile(v, nv, 0.75), quantile(v, nv, 0.90));
        if (n_zero == nv)
            say("pvar: every PVar is 0: all responses of each prompt have equal values (a policy equal to its "
                "reference has h = 0)\n");
    }
    if (do_select) {
        int64_t nu = nv - ns;
        say("pvar: selected %lld of %lld prompts (%s, frac %g%s): mean PVar %.4g selected, %.4g unselected\n",
            (long long)ns, (long long)nv, pc->select, pc->frac, strcmp(pc->select, "top") && strcmp(pc->select, "bottom") ? ", seeded" : "",
            ns ? sum_s / (double)ns : NAN, nu ? sum_u / (double)nu : NAN);
        if (care)
            say("pvar: mean care %.4g selected, %.4g unselected\n", ns ? care_s / (double)ns : NAN,
                nu ? care_u / (double)nu : NAN);
    }
    if (care && !isnan(rs))
        say("pvar: correlation of PVar with the prompts' care (synthetic task): pearson %.4f spearman %.4f\n", rho, rs);
    else if (care)
        say("pvar: no care correlation: PVar (or the care) is the same for every prompt\n");
    else
        say("pvar: no care correlation: %s\n", *err ? err : "not a file of the synthetic task");
    if (do_select && *pc->select_out)
        write_selection(&cfg, &d, sel, ns, src, have_task ? &task : NULL, text);
    else if (*pc->select_out)
        warn("pvar: pvar.select_out = %s is ignored with pvar.select = \"none\"", pc->select_out);
    say("pvar: wrote %s (%.1f s)\n", pc->out, now_s() - t0);

    free(v);
    free(cv);
    free(text);
    free(care);
    free(selected);
    free(sel);
    free(rk);
    free(pv);
    free(h);
    free(map);
    free(src);
    if (trc == 0)
        synth_task_free(&task);
    prefdata_free(&d);
    config_free(&cfg);
    return 0;
}
