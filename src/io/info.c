/* info.c: `prefer info FILE.h5`, a human summary of any file prefer writes.
 *
 * Does: switch on the root "format" attribute: a preference dataset is read and validated
 * in full (counts, token and length statistics, scores, the config it was made with); a
 * checkpoint gets its dims, step, optimizer state and tensor list (each tensor read and
 * checked for finiteness); any other HDF5 file gets its format attribute and a listing of
 * its objects. Exit 0 for a valid prefer file, 1 for a missing, foreign or invalid file.
 * Does not: modify anything. Rank 0 does the work and prints; the exit code is broadcast
 * so every rank of an mpirun returns the same code.
 */
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/runlog.h"
#include "prefer/util.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INFO_CONFIG_LINES 8
#define INFO_LIST_DEPTH 2
#define INFO_LIST_MAX 200

static const char *usage =
    "usage: prefer info FILE.h5 [--help]\n"
    "\n"
    "Summarise a file written by prefer, chosen by its 'format' attribute:\n"
    "  prefer.prefdata    preference dataset: counts, token and length statistics, scores,\n"
    "                     the config it was made with (the whole file is validated)\n"
    "  prefer.checkpoint  model dims, step, optimizer state, every tensor with its shape\n"
    "                     (every value is checked to be finite)\n"
    "  prefer.runlog      run log: attributes, tables with columns and row counts, the\n"
    "                     last row of /steps (readable while training runs)\n"
    "Any other HDF5 file: its format attribute and its objects.\n"
    "Exit status: 0 for a valid prefer file, 1 for a missing, foreign or invalid one.\n"
    "Formats are documented in docs/formats.md.\n";

static void errmsg(const char *msg) { fprintf(stderr, "prefer info: %s\n", msg); }

/* "  producer prefer 0.1.0, created ..." line shared by every prefer format. */
static void print_origin(hid_t f)
{
    char *prod = h5u_read_attr_str(f, "producer");
    char *when = h5u_read_attr_str(f, "created");
    say("  written by    %s%s%s\n", prod ? prod : "(unknown producer)", when ? ", " : "",
        when ? when : "");
    free(prod);
    free(when);
}

static void print_config(hid_t f)
{
    char *cfg = h5u_read_attr_str(f, "config");
    if (!cfg || !*cfg) {
        say("  config        (none stored)\n");
        free(cfg);
        return;
    }
    int lines = 0;
    for (const char *p = cfg; *p; p++)
        if (*p == '\n' || p[1] == 0)
            lines++;
    if (lines > INFO_CONFIG_LINES)
        say("  config        %d lines, the first %d shown (all: h5dump -a /config FILE)\n", lines,
            INFO_CONFIG_LINES);
    else
        say("  config        %d line%s\n", lines, lines == 1 ? "" : "s");
    const char *p = cfg;
    for (int i = 0; i < INFO_CONFIG_LINES && *p; i++) {
        const char *e = strchr(p, '\n');
        int len = e ? (int)(e - p) : (int)strlen(p);
        say("    | %.*s\n", len, p);
        p = e ? e + 1 : p + len;
    }
    free(cfg);
}

/* Length statistics of n segments given by offsets. */
static void print_lengths(const char *what, const int64_t *off, int64_t n)
{
    if (n == 0) {
        say("  %-13s 0\n", what);
        return;
    }
    int64_t mn = INT64_MAX, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t len = off[i + 1] - off[i];
        mn = len < mn ? len : mn;
        mx = len > mx ? len : mx;
    }
    say("  %-13s %" PRId64 " (tokens %" PRId64 "; length min %" PRId64 " mean %.2f max %" PRId64 ")\n",
        what, n, off[n], mn, (double)off[n] / (double)n, mx);
}

static int info_prefdata(const char *path, hid_t f)
{
    int64_t version = 0;
    h5u_read_attr_i64(f, "version", &version);
    PrefData d;
    char err[1024];
    if (prefdata_read_checked(path, 0, &d, err, sizeof err) != 0) {
        errmsg(err);
        return PREFER_EXIT_ERROR;
    }
    say("%s: preference dataset (%s version %" PRId64 ")\n", path, PREFDATA_FORMAT, version);
    print_origin(f);
    say("  vocab_size    %" PRId64 "\n", d.vocab_size);
    if (d.tokenizer)
        say("  tokenizer     %s\n", d.tokenizer);
    print_lengths("prompts", d.prompt_offsets, d.n_prompts);
    print_lengths("responses", d.response_offsets, d.n_responses);
    if (d.n_prompts > 0) {
        int64_t *cnt = xcalloc((size_t)d.n_prompts, sizeof *cnt);
        for (int64_t i = 0; i < d.n_responses; i++)
            cnt[d.response_prompt[i]]++;
        int64_t mn = INT64_MAX, mx = 0, none = 0;
        for (int64_t i = 0; i < d.n_prompts; i++) {
            mn = cnt[i] < mn ? cnt[i] : mn;
            mx = cnt[i] > mx ? cnt[i] : mx;
            none += cnt[i] == 0;
        }
        say("  per prompt    %" PRId64 "..%" PRId64 " responses (%" PRId64 " prompts have none)\n",
            mn, mx, none);
        free(cnt);
    }
    say("  pairs         %" PRId64 "%s\n", d.n_pairs,
        d.n_pairs == 0 ? " (no preference pairs: a supervised corpus)" : "");
    if (d.response_score && d.n_responses > 0) {
        double sum = 0, mn = DBL_MAX, mx = -DBL_MAX;
        for (int64_t i = 0; i < d.n_responses; i++) {
            double s = d.response_score[i];
            sum += s;
            mn = s < mn ? s : mn;
            mx = s > mx ? s : mx;
        }
        say("  scores        mean %.4g min %.4g max %.4g\n", sum / (double)d.n_responses, mn, mx);
    } else {
        say("  scores        %s\n", d.response_score ? "present (no responses)" : "none");
    }
    print_config(f);
    say("  valid         yes (every index, offset, token id and score checked)\n");
    prefdata_free(&d);
    return 0;
}

/* ---- checkpoints -------------------------------------------------------------------- */

typedef struct {
    const char *path;
    int64_t n_tensors, numel;
    int bad; /* tensors with non-finite values or unreadable */
    int list;
} TensorWalk;

static herr_t tensor_cb(hid_t g, const char *name, const H5L_info_t *li, void *op)
{
    TensorWalk *w = op;
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0) {
        if (w->list)
            say("    %-34s (not a dataset)\n", name);
        w->bad++;
        return 0;
    }
    hid_t sp = H5Dget_space(ds);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[4] = {0};
    if (nd >= 1 && nd <= 4)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(ds);
    char shape[96] = "(?)";
    int ok = nd >= 1 && nd <= 4;
    if (ok) {
        int k = snprintf(shape, sizeof shape, "(");
        for (int i = 0; i < nd; i++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%llu", i ? ", " : "",
                          (unsigned long long)dims[i]);
        snprintf(shape + k, sizeof shape - (size_t)k, ")");
    }
    const char *note = "";
    if (ok) {
        char err[512];
        int64_t n;
        float *v = h5u_read_array(g, name, H5T_NATIVE_FLOAT, nd, NULL, &n, err, sizeof err);
        if (!v) {
            note = "  UNREADABLE";
            ok = 0;
        } else {
            if (!all_finite(v, (size_t)n)) {
                note = "  NON-FINITE VALUES";
                ok = 0;
            }
            w->numel += n;
            free(v);
        }
    } else {
        note = "  BAD RANK";
    }
    w->n_tensors++;
    w->bad += !ok;
    if (w->list || !ok) {
        if (*note)
            say("    %-34s %-14s%s\n", name, shape, note);
        else
            say("    %-34s %s\n", name, shape);
    }
    return 0;
}

/* Walk a group's datasets in creation order (ckpt.c tracks it), else by name. */
static int walk_tensors(hid_t f, const char *group, TensorWalk *w)
{
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0)
        return -1;
    hsize_t idx = 0;
    herr_t r = H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, tensor_cb, w);
    if (r < 0 && w->n_tensors == 0) {
        idx = 0;
        r = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, tensor_cb, w);
    }
    H5Gclose(g);
    return r < 0 ? -1 : 0;
}

static int info_ckpt(const char *path, hid_t f)
{
    char err[1024];
    if (h5u_check_header(f, path, CKPT_FORMAT, CKPT_VERSION, err, sizeof err) != 0) {
        errmsg(err);
        return PREFER_EXIT_ERROR;
    }
    GptDims d;
    if (ckpt_read_dims(path, &d, err, sizeof err) != 0) {
        errmsg(err);
        return PREFER_EXIT_ERROR;
    }
    int64_t version = 0, step = -1, adam_t = -1, rk = 0, rc = 0, np = -1;
    h5u_read_attr_i64(f, "version", &version);
    h5u_read_attr_i64(f, "step", &step);
    h5u_read_attr_i64(f, "adam_t", &adam_t);
    h5u_read_attr_i64(f, "rng_key", &rk);
    h5u_read_attr_i64(f, "rng_counter", &rc);
    h5u_read_attr_i64(f, "num_params", &np);
    say("%s: checkpoint (%s version %" PRId64 ")\n", path, CKPT_FORMAT, version);
    print_origin(f);
    say("  model         vocab_size %d, context %d, n_layer %d, n_head %d, n_embd %d\n",
        d.vocab_size, d.context, d.n_layer, d.n_head, d.n_embd);
    say("  step          %" PRId64 "\n", step);
    uint64_t key, ctr;
    memcpy(&key, &rk, sizeof key);
    memcpy(&ctr, &rc, sizeof ctr);
    say("  rng           key 0x%016" PRIx64 " counter %" PRIu64 "\n", key, ctr);
    int moments = H5Lexists(f, "adam", H5P_DEFAULT) > 0;
    if (moments)
        say("  AdamW moments present (adam_t %" PRId64 ")\n", adam_t);
    else
        say("  AdamW moments absent (weights only)\n");
    print_config(f);

    TensorWalk w = {.path = path, .list = 1};
    say("  tensors:\n");
    if (walk_tensors(f, "params", &w) != 0) {
        char m[600];
        snprintf(m, sizeof m, "%s: missing or unreadable /params group", path);
        errmsg(m);
        return PREFER_EXIT_ERROR;
    }
    say("  parameters    %" PRId64 " in %" PRId64 " tensors%s\n", w.numel, w.n_tensors,
        np >= 0 && np != w.numel ? " (DIFFERS from the num_params attribute)" : "");
    int bad = w.bad;
    if (moments) {
        const char *grp[2] = {"adam/m", "adam/v"};
        for (int i = 0; i < 2; i++) {
            TensorWalk wm = {.path = path, .list = 0};
            if (walk_tensors(f, grp[i], &wm) != 0 || wm.numel != w.numel) {
                say("    /%s: missing, unreadable or a different size than /params\n", grp[i]);
                bad++;
            }
            bad += wm.bad;
        }
    }
    if (bad) {
        char m[600];
        snprintf(m, sizeof m, "%s: %d tensor(s) unreadable, malformed or not finite (listed above)",
                 path, bad);
        errmsg(m);
        return PREFER_EXIT_ERROR;
    }
    say("  valid         yes (every value finite)\n");
    return 0;
}

/* ---- anything else ---------------------------------------------------------------- */

typedef struct {
    int depth;
    int count;
} ListWalk;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *li, void *op)
{
    ListWalk *w = op;
    if (++w->count > INFO_LIST_MAX) {
        if (w->count == INFO_LIST_MAX + 1)
            say("  ... (more objects not listed)\n");
        return 0;
    }
    int ind = 4 + 2 * w->depth;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
        say("%*s%s (link, target not found)\n", ind, "", name);
        return 0;
    }
    H5I_type_t t = H5Iget_type(o);
    if (t == H5I_GROUP) {
        say("%*s%s/\n", ind, "", name);
        if (w->depth + 1 < INFO_LIST_DEPTH) {
            ListWalk sub = {w->depth + 1, w->count};
            hsize_t idx = 0;
            H5Literate(o, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &sub);
            w->count = sub.count;
        }
    } else if (t == H5I_DATASET) {
        hid_t sp = H5Dget_space(o), ty = H5Dget_type(o);
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        char shape[96] = "scalar";
        if (nd >= 1 && nd <= 8) {
            hsize_t dims[8];
            H5Sget_simple_extent_dims(sp, dims, NULL);
            int k = snprintf(shape, sizeof shape, "(");
            for (int i = 0; i < nd; i++)
                k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%llu", i ? ", " : "",
                              (unsigned long long)dims[i]);
            snprintf(shape + k, sizeof shape - (size_t)k, ")");
        }
        H5T_class_t c = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
        size_t sz = ty >= 0 ? H5Tget_size(ty) : 0;
        const char *cn = c == H5T_INTEGER  ? "integer"
                         : c == H5T_FLOAT  ? "float"
                         : c == H5T_STRING ? "string"
                                           : "other";
        say("%*s%s  dataset %s, %zu-byte %s\n", ind, "", name, shape, sz, cn);
        if (sp >= 0)
            H5Sclose(sp);
        if (ty >= 0)
            H5Tclose(ty);
    } else {
        say("%*s%s (named datatype or other object)\n", ind, "", name);
    }
    H5Oclose(o);
    return 0;
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *ai, void *op)
{
    say("    @%s\n", name);
    return 0;
}

static int info_other(const char *path, hid_t f)
{
    char *fmt = h5u_read_attr_str(f, "format");
    int prefer_family = fmt && !strncmp(fmt, "prefer.", 7);
    if (fmt)
        say("%s: HDF5 file, format attribute '%s'%s\n", path, fmt,
            prefer_family ? " (a prefer format this version does not summarise)" : "");
    else
        say("%s: HDF5 file without a format attribute\n", path);
    say("  root attributes:\n");
    hsize_t aidx = 0;
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &aidx, attr_cb, NULL);
    say("  objects:\n");
    ListWalk w = {0, 0};
    hsize_t idx = 0;
    H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &w);
    if (w.count == 0)
        say("    (none)\n");
    int rc = 0;
    if (!prefer_family) {
        char m[700];
        snprintf(m, sizeof m,
                 "%s: not a prefer file (format attribute %s%s%s; prefer writes '%s' and '%s', "
                 "see docs/formats.md)",
                 path, fmt ? "is '" : "missing", fmt ? fmt : "", fmt ? "'" : "", PREFDATA_FORMAT,
                 CKPT_FORMAT);
        errmsg(m);
        rc = PREFER_EXIT_ERROR;
    }
    free(fmt);
    return rc;
}

static int info_file(const char *path)
{
    char m[1200];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(m, sizeof m, "%s: cannot open: %s", path, strerror(errno));
        errmsg(m);
        return PREFER_EXIT_ERROR;
    }
    if (!S_ISREG(sb.st_mode) || !h5u_is_hdf5(path)) {
        snprintf(m, sizeof m, "%s: not an HDF5 file (prefer's files are HDF5; see docs/formats.md)",
                 path);
        errmsg(m);
        return PREFER_EXIT_ERROR;
    }
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(m, sizeof m, "%s: cannot open as HDF5 (corrupt, or locked by a writer?)", path);
        errmsg(m);
        return PREFER_EXIT_ERROR;
    }
    char *fmt = h5u_read_attr_str(f, "format");
    int rc;
    if (fmt && !strcmp(fmt, PREFDATA_FORMAT))
        rc = info_prefdata(path, f);
    else if (fmt && !strcmp(fmt, CKPT_FORMAT))
        rc = info_ckpt(path, f);
    else if (fmt && !strcmp(fmt, RUNLOG_FORMAT))
        rc = runlog_info(path, f);
    else
        rc = info_other(path, f);
    free(fmt);
    H5Fclose(f);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        say("%s", usage);
        return 0;
    }
    static const char *const allowed[] = {NULL};
    cli_check_flags(&a, "info", allowed);
    if (a.n_pos != 1 || a.n_sets > 0) {
        if (util_rank() == 0)
            fprintf(stderr, "prefer info: expected exactly one FILE.h5 (and no --set)\n\n%s",
                    usage);
        return PREFER_EXIT_USAGE;
    }
    int rc = 0;
    if (util_rank() == 0)
        rc = info_file(a.pos[0]);
    dist_bcast(&rc, sizeof rc, 0);
    return rc;
}
