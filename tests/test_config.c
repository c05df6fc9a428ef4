/* test_config.c: the config module without MPI: defaults, loading, every error class (message
 * names file, line and key), --set of every type, text round trip, the reference listing. */
#define _GNU_SOURCE
#include "prefer/config.h"

#include <CUnit/Basic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Write text to a fresh temporary file; path (>= 64 bytes) receives its name. */
static void write_tmp(const char *text, char *path)
{
    strcpy(path, "/tmp/prefer_test_config_XXXXXX");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    size_t n = strlen(text);
    CU_ASSERT_FATAL(write(fd, text, n) == (ssize_t)n);
    close(fd);
}

typedef struct {
    PreferConfig cfg;
    char path[64];
    char err[1024];
    int rc;
} Loaded;

/* Defaults, then `text` as a file (NULL: no file), then the sets. */
static void load(Loaded *L, const char *text, const char *const *sets, int n_sets)
{
    memset(L, 0, sizeof *L);
    config_defaults(&L->cfg);
    if (text)
        write_tmp(text, L->path);
    L->rc = config_load_checked(&L->cfg, text ? L->path : NULL, sets, n_sets, L->err,
                                sizeof L->err);
    if (text)
        unlink(L->path);
}

/* 1 if loading fails with a message that starts "<file>:<line>: " (line 0: "<file>: "; no
 * file: no prefix check) and contains every NULL-terminated fragment. Prints why not. */
static int fails_with(const char *text, const char *const *sets, int n_sets, int line, ...)
{
    Loaded L;
    load(&L, text, sets, n_sets);
    int ok = L.rc == -1;
    char prefix[128];
    if (line > 0)
        snprintf(prefix, sizeof prefix, "%s:%d: ", L.path, line);
    else
        snprintf(prefix, sizeof prefix, "%s: ", L.path);
    if (text && strncmp(L.err, prefix, strlen(prefix)) != 0)
        ok = 0;
    va_list ap;
    va_start(ap, line);
    for (const char *frag; (frag = va_arg(ap, const char *)) != NULL;)
        if (!strstr(L.err, frag)) {
            fprintf(stderr, "\n  missing \"%s\"", frag);
            ok = 0;
        }
    va_end(ap);
    if (!ok)
        fprintf(stderr, "\n  rc %d, message: \"%s\" (wanted prefix \"%s\")\n", L.rc, L.err,
                text ? prefix : "");
    config_free(&L.cfg);
    return ok;
}

#define FILE_FAILS(text, line, ...) CU_ASSERT(fails_with(text, NULL, 0, line, __VA_ARGS__, NULL))
#define SET_FAILS(arg, ...)                                                                    \
    do {                                                                                       \
        const char *s_[] = {arg};                                                              \
        CU_ASSERT(fails_with(NULL, s_, 1, 0, __VA_ARGS__, NULL));                              \
    } while (0)

/* Every field equal (strings by content). */
static int same_config(const PreferConfig *a, const PreferConfig *b)
{
    const ModelConfig *ma = &a->model, *mb = &b->model;
    const TrainConfig *ta = &a->train, *tb = &b->train;
    const SynthConfig *sa = &a->synth, *sb = &b->synth;
    return ma->vocab_size == mb->vocab_size && ma->context == mb->context &&
           ma->n_layer == mb->n_layer && ma->n_head == mb->n_head && ma->n_embd == mb->n_embd &&
           ma->init_std == mb->init_std && !strcmp(ma->init_from, mb->init_from) &&
           !strcmp(ta->objective, tb->objective) && !strcmp(ta->data, tb->data) &&
           !strcmp(ta->out_dir, tb->out_dir) && ta->steps == tb->steps &&
           ta->micro_batch == tb->micro_batch && ta->grad_accum == tb->grad_accum &&
           ta->lr == tb->lr && ta->min_lr_frac == tb->min_lr_frac &&
           ta->warmup_steps == tb->warmup_steps && !strcmp(ta->decay, tb->decay) &&
           ta->weight_decay == tb->weight_decay && ta->decay_embeddings == tb->decay_embeddings &&
           ta->beta1 == tb->beta1 && ta->beta2 == tb->beta2 && ta->adam_eps == tb->adam_eps &&
           ta->grad_clip == tb->grad_clip && ta->seed == tb->seed &&
           ta->log_every == tb->log_every && ta->ckpt_every == tb->ckpt_every &&
           a->runtime.threads == b->runtime.threads && !strcmp(sa->out, sb->out) &&
           sa->n_prompts == sb->n_prompts && sa->prompt_len == sb->prompt_len &&
           sa->response_len == sb->response_len && sa->vocab_size == sb->vocab_size &&
           sa->seed == sb->seed;
}

/* ---------------------------------------------------------------- tests */

static void test_defaults(void)
{
    PreferConfig c;
    config_defaults(&c);
    CU_ASSERT_EQUAL(c.model.vocab_size, 64);
    CU_ASSERT_EQUAL(c.model.context, 64);
    CU_ASSERT_EQUAL(c.model.n_layer, 2);
    CU_ASSERT_EQUAL(c.model.n_head, 4);
    CU_ASSERT_EQUAL(c.model.n_embd, 64);
    CU_ASSERT_DOUBLE_EQUAL(c.model.init_std, 0.02, 0);
    CU_ASSERT_STRING_EQUAL(c.model.init_from, "");
    CU_ASSERT_STRING_EQUAL(c.train.objective, "sft");
    CU_ASSERT_STRING_EQUAL(c.train.data, "data/demo-sft.h5");
    CU_ASSERT_STRING_EQUAL(c.train.out_dir, "runs/demo");
    CU_ASSERT_EQUAL(c.train.steps, 200);
    CU_ASSERT_EQUAL(c.train.micro_batch, 16);
    CU_ASSERT_EQUAL(c.train.grad_accum, 1);
    CU_ASSERT(c.train.lr == 3e-3);
    CU_ASSERT(c.train.min_lr_frac == 0.1);
    CU_ASSERT_EQUAL(c.train.warmup_steps, 20);
    CU_ASSERT_STRING_EQUAL(c.train.decay, "cosine");
    CU_ASSERT(c.train.weight_decay == 0.0);
    CU_ASSERT_EQUAL(c.train.decay_embeddings, 0);
    CU_ASSERT(c.train.beta1 == 0.9);
    CU_ASSERT(c.train.beta2 == 0.95);
    CU_ASSERT(c.train.adam_eps == 1e-8);
    CU_ASSERT(c.train.grad_clip == 1.0);
    CU_ASSERT_EQUAL(c.train.seed, 1234);
    CU_ASSERT_EQUAL(c.train.log_every, 10);
    CU_ASSERT_EQUAL(c.train.ckpt_every, 0);
    CU_ASSERT_EQUAL(c.runtime.threads, 0);
    CU_ASSERT_STRING_EQUAL(c.synth.out, "demo-out/train.h5");
    CU_ASSERT_EQUAL(c.synth.n_prompts, 512);
    CU_ASSERT_EQUAL(c.synth.prompt_len, 8);
    CU_ASSERT_EQUAL(c.synth.response_len, 16);
    CU_ASSERT_EQUAL(c.synth.vocab_size, 64);
    CU_ASSERT_EQUAL(c.synth.seed, 7);
    CU_ASSERT_STRING_EQUAL(c.source, "");
    config_free(&c);
    config_free(&c); /* twice is harmless: pointers were cleared */
    config_free(NULL);

    /* NULL path and no sets: defaults, source "" */
    Loaded L;
    load(&L, NULL, NULL, 0);
    CU_ASSERT_EQUAL(L.rc, 0);
    CU_ASSERT_STRING_EQUAL(L.cfg.source, "");
    config_free(&L.cfg);
}

static void test_load_valid(void)
{
    Loaded L;
    load(&L,
         "# a comment\n"
         "model: {\n"
         "  n_layer = 3;\n"
         "  n_embd = 96;\n"
         "  n_head = 6;\n"
         "  init_from = \"runs/x/ckpt.h5\";\n"
         "};\n"
         "train: {\n"
         "  lr = 1;            // an integer is fine for a float key\n"
         "  beta2 = 0.99;\n"
         "  decay = \"linear\";\n"
         "  decay_embeddings = true;\n"
         "  seed = 5000000000L;\n"
         "  steps = 0x10;\n"
         "  warmup_steps = 1000; /* more than steps is fine */\n"
         "};\n"
         "runtime = { threads = 3; };\n"
         "synth: { seed = 42; vocab_size = 128; };\n",
         NULL, 0);
    CU_ASSERT_EQUAL_FATAL(L.rc, 0);
    CU_ASSERT_EQUAL(L.cfg.model.n_layer, 3);
    CU_ASSERT_EQUAL(L.cfg.model.n_embd, 96);
    CU_ASSERT_EQUAL(L.cfg.model.n_head, 6);
    CU_ASSERT_STRING_EQUAL(L.cfg.model.init_from, "runs/x/ckpt.h5");
    CU_ASSERT(L.cfg.train.lr == 1.0);
    CU_ASSERT(L.cfg.train.beta2 == 0.99);
    CU_ASSERT_STRING_EQUAL(L.cfg.train.decay, "linear");
    CU_ASSERT_EQUAL(L.cfg.train.decay_embeddings, 1);
    CU_ASSERT_EQUAL(L.cfg.train.seed, 5000000000LL);
    CU_ASSERT_EQUAL(L.cfg.train.steps, 16);
    CU_ASSERT_EQUAL(L.cfg.train.warmup_steps, 1000);
    CU_ASSERT_EQUAL(L.cfg.runtime.threads, 3);
    CU_ASSERT_EQUAL(L.cfg.synth.seed, 42);
    CU_ASSERT_EQUAL(L.cfg.synth.vocab_size, 128); /* > model.vocab_size: not our business */
    CU_ASSERT_EQUAL(L.cfg.train.micro_batch, 16); /* untouched keys keep their defaults */
    CU_ASSERT_STRING_EQUAL(L.cfg.source, L.path);
    config_free(&L.cfg);

    /* an empty file is valid */
    load(&L, "", NULL, 0);
    CU_ASSERT_EQUAL(L.rc, 0);
    config_free(&L.cfg);
}

static void test_error_file(void)
{
    Loaded L;
    memset(&L, 0, sizeof L);
    config_defaults(&L.cfg);
    L.rc = config_load_checked(&L.cfg, "/nonexistent/dir/x.cfg", NULL, 0, L.err, sizeof L.err);
    CU_ASSERT_EQUAL(L.rc, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(L.err, "/nonexistent/dir/x.cfg: cannot open"));
    L.rc = config_load_checked(&L.cfg, "/tmp", NULL, 0, L.err, sizeof L.err);
    CU_ASSERT_EQUAL(L.rc, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(L.err, "/tmp: cannot open"));
    /* err may be NULL */
    CU_ASSERT_EQUAL(config_load_checked(&L.cfg, "/nonexistent", NULL, 0, NULL, 0), -1);
    config_free(&L.cfg);

    FILE_FAILS("train: {\n  lr = 0.1;\n  steps = ;\n};\n", 3, "syntax error");
    FILE_FAILS("train: {\n  lr = 0.1;\n  lr = 0.2;\n};\n", 3, "duplicate");
}

/* Errors inside an @include name the included file and its line. */
static void test_error_include(void)
{
    char inc[64], text[256];
    write_tmp("# included\ntrain: {\n  steps = 5;\n  lrr = 1.0;\n};\n", inc);
    snprintf(text, sizeof text, "model: { n_layer = 3; };\n@include \"%s\"\n", inc);
    Loaded L;
    load(&L, text, NULL, 0);
    CU_ASSERT_EQUAL(L.rc, -1);
    char want[128];
    snprintf(want, sizeof want, "%s:4: unknown key 'train.lrr'", inc);
    CU_ASSERT_PTR_NOT_NULL(strstr(L.err, want));
    if (!strstr(L.err, want))
        fprintf(stderr, "\n  got \"%s\", wanted \"%s\"\n", L.err, want);
    config_free(&L.cfg);
    unlink(inc);

    write_tmp("train: {\n  seed = 8589934592;\n};\n", inc);
    snprintf(text, sizeof text, "@include \"%s\"\n", inc);
    load(&L, text, NULL, 0);
    snprintf(want, sizeof want, "%s:2: train.seed: 8589934592 does not fit in 32 bits", inc);
    CU_ASSERT(L.rc == -1 && strstr(L.err, want));
    config_free(&L.cfg);
    unlink(inc);

    load(&L, "@include \"/nonexistent/inc.cfg\"\n", NULL, 0);
    CU_ASSERT(L.rc == -1 && strstr(L.err, L.path) && strstr(L.err, "include"));
    config_free(&L.cfg);

    /* an empty path is refused, not read */
    PreferConfig c;
    config_defaults(&c);
    char err[256];
    CU_ASSERT_EQUAL(config_load_checked(&c, "", NULL, 0, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));
    config_free(&c);
}

static void test_error_unknown(void)
{
    FILE_FAILS("train: {\n  steps = 10;\n  lrr = 0.1;\n};\n", 3,
               "unknown key 'train.lrr'", "did you mean 'train.lr'?");
    FILE_FAILS("trian: {\n  lr = 0.1;\n};\n", 1, "unknown section 'trian'",
               "did you mean 'train'?");
    FILE_FAILS("model: { n_layer = 2; };\nfoo: { bar = 1; };\n", 2, "unknown section 'foo'");
    /* a key of another section points there */
    FILE_FAILS("train: {\n  vocab_size = 10;\n};\n", 2, "unknown key 'train.vocab_size'",
               "did you mean 'model.vocab_size'?");
    /* no hint when nothing is close */
    Loaded L;
    load(&L, "train: { zzzzzz = 1; };\n", NULL, 0);
    CU_ASSERT_EQUAL(L.rc, -1);
    CU_ASSERT_PTR_NULL(strstr(L.err, "did you mean"));
    config_free(&L.cfg);
    /* a deeper unknown setting inside an unknown group is caught at the group */
    FILE_FAILS("train: {\n  extra: { lr = 1.0; };\n};\n", 2, "unknown key 'train.extra'");
}

static void test_error_type(void)
{
    FILE_FAILS("train: {\n  steps = \"abc\";\n};\n", 2,
               "train.steps: expected an integer, got a string");
    FILE_FAILS("train: {\n\n  steps = 1.5;\n};\n", 3, "train.steps: expected an integer, got a float");
    FILE_FAILS("train: { lr = \"fast\"; };\n", 1, "train.lr: expected a number, got a string");
    FILE_FAILS("train: { decay_embeddings = 1; };\n", 1,
               "train.decay_embeddings: expected a boolean", "got an integer");
    FILE_FAILS("train: { data = 3; };\n", 1, "train.data: expected a string, got an integer");
    FILE_FAILS("train: { decay = false; };\n", 1, "train.decay: expected a string, got a boolean");
    /* group where a scalar belongs, and the other way round */
    FILE_FAILS("train: {\n  lr = { a = 1; };\n};\n", 2, "train.lr: expected a number, got a group");
    FILE_FAILS("train: { steps = [1, 2]; };\n", 1, "train.steps", "got an array");
    FILE_FAILS("train: { steps = (1, \"a\"); };\n", 1, "train.steps", "got a list");
    FILE_FAILS("model: { n_layer = 2; };\ntrain = 5;\n", 2, "'train' must be a group",
               "got an integer");
    FILE_FAILS("train = [1.0];\n", 1, "'train' must be a group", "got an array");
    /* an integer beyond 32 bits without L is wrapped by libconfig 1.5: refuse it */
    FILE_FAILS("train: {\n  seed = 5000000000;\n};\n", 2, "train.seed", "5000000000",
               "does not fit in 32 bits");
    FILE_FAILS("train: { steps=4294967297; };\n", 1, "train.steps", "does not fit in 32 bits");
    /* ... but the same name twice on a line is matched to the right literal */
    Loaded L;
    load(&L, "train: { seed = 9; }; synth: { seed = 11; };\n", NULL, 0);
    CU_ASSERT_EQUAL(L.rc, 0);
    CU_ASSERT_EQUAL(L.cfg.train.seed, 9);
    CU_ASSERT_EQUAL(L.cfg.synth.seed, 11);
    config_free(&L.cfg);
}

static void test_error_range_choice(void)
{
    FILE_FAILS("train: {\n  lr = 20;\n};\n", 2, "train.lr = 20.0: out of range (0, 10]");
    FILE_FAILS("train: { lr = 0.0; };\n", 1, "train.lr", "out of range (0, 10]");
    FILE_FAILS("train: { beta1 = 1.0; };\n", 1, "train.beta1", "out of range [0, 1)");
    FILE_FAILS("model: {\n n_layer = 0;\n};\n", 2, "model.n_layer = 0: out of range [1, 256]");
    FILE_FAILS("runtime: { threads = -1; };\n", 1, "runtime.threads", "out of range");
    FILE_FAILS("train: { steps = 5000000000L; };\n", 1, "train.steps", "out of range");
    FILE_FAILS("train: { seed = -1; };\n", 1, "train.seed = -1: out of range [0, inf)");
    FILE_FAILS("train: { grad_clip = -0.5; };\n", 1, "train.grad_clip", "out of range");
    FILE_FAILS("train: {\n  decay = \"cosin\";\n};\n", 2, "train.decay = \"cosin\"",
               "not one of cosine|linear|constant", "did you mean 'cosine'?");
    /* train.objective is a string checked by losses.c after the load: no line number */
    FILE_FAILS("train: { objective = \"dpx\"; };\n", 0, "train.objective", "unknown objective 'dpx'",
               "valid: sft, dpo");
    FILE_FAILS("train: { objective = \"dpo,sft\"; loss_weights = \"1\"; };\n", 0,
               "train.loss_weights", "has 1 weight but");
    FILE_FAILS("train: { out_dir = \"\"; };\n", 1, "train.out_dir", "must not be empty");

    /* boundaries that are inside */
    Loaded L;
    load(&L, "train: { lr = 10.0; beta1 = 0.0; grad_clip = 0.0; steps = 1000000000; };\n", NULL, 0);
    CU_ASSERT_EQUAL(L.rc, 0);
    config_free(&L.cfg);
}

static void test_error_cross(void)
{
    FILE_FAILS("model: {\n  n_embd = 60;\n  n_head = 7;\n};\n", 0, "model.n_embd = 60",
               "multiple of model.n_head = 7", ":2)", ":3)");
    const char *s[] = {"model.n_head=5"};
    CU_ASSERT(fails_with(NULL, s, 1, 0, "model.n_embd = 64 (default)",
                         "model.n_head = 5 (--set model.n_head=5)", NULL));
}

/* A failed load leaves the struct as it was. */
static void test_error_keeps_cfg(void)
{
    PreferConfig c;
    config_defaults(&c);
    const char *ok[] = {"train.steps=7", "train.out_dir=a"};
    CU_ASSERT_EQUAL(config_load_checked(&c, NULL, ok, 2, NULL, 0), 0);
    const char *bad[] = {"train.steps=9", "train.out_dir=b", "train.lr=abc"};
    char err[256];
    CU_ASSERT_EQUAL(config_load_checked(&c, NULL, bad, 3, err, sizeof err), -1);
    CU_ASSERT_EQUAL(c.train.steps, 7);
    CU_ASSERT_STRING_EQUAL(c.train.out_dir, "a");
    config_free(&c);
}

static void test_set(void)
{
    Loaded L;
    const char *sets[] = {
        "train.steps=500",         "train.lr=0.5",          "train.seed=123456789012345",
        "train.decay_embeddings=true", "train.decay=linear", "train.out_dir=\"quoted dir\"",
        "train.data=plain \"x\" y", "model.init_std=2e-2",  "train.adam_eps=1",
        "model.init_from=\"\"",   "runtime.threads=+4",
    };
    load(&L, NULL, sets, (int)(sizeof sets / sizeof sets[0]));
    CU_ASSERT_EQUAL_FATAL(L.rc, 0);
    CU_ASSERT_EQUAL(L.cfg.train.steps, 500);
    CU_ASSERT(L.cfg.train.lr == 0.5);
    CU_ASSERT_EQUAL(L.cfg.train.seed, 123456789012345LL);
    CU_ASSERT_EQUAL(L.cfg.train.decay_embeddings, 1);
    CU_ASSERT_STRING_EQUAL(L.cfg.train.decay, "linear");
    CU_ASSERT_STRING_EQUAL(L.cfg.train.out_dir, "quoted dir");
    CU_ASSERT_STRING_EQUAL(L.cfg.train.data, "plain \"x\" y");
    CU_ASSERT(L.cfg.model.init_std == 0.02);
    CU_ASSERT(L.cfg.train.adam_eps == 1.0);
    CU_ASSERT_EQUAL(L.cfg.runtime.threads, 4);
    CU_ASSERT_STRING_EQUAL(L.cfg.model.init_from, "");
    config_free(&L.cfg);
}

static void test_set_details(void)
{
    Loaded L;
    /* bool spellings */
    const char *b1[] = {"train.decay_embeddings=1"}, *b0[] = {"train.decay_embeddings=FALSE"};
    load(&L, NULL, b1, 1);
    CU_ASSERT(L.rc == 0 && L.cfg.train.decay_embeddings == 1);
    config_free(&L.cfg);
    load(&L, NULL, b0, 1);
    CU_ASSERT(L.rc == 0 && L.cfg.train.decay_embeddings == 0);
    config_free(&L.cfg);
    /* later --set wins, and --set wins over the file */
    const char *twice[] = {"train.lr=0.2", "train.lr=0.25"};
    load(&L, "train: { lr = 0.1; steps = 3; };\n", twice, 2);
    CU_ASSERT_EQUAL(L.rc, 0);
    CU_ASSERT(L.cfg.train.lr == 0.25);
    CU_ASSERT_EQUAL(L.cfg.train.steps, 3);
    CU_ASSERT_STRING_EQUAL(L.cfg.source, L.path);
    config_free(&L.cfg);
    /* value with '=' inside a string */
    const char *eq[] = {"train.out_dir=a=b"};
    load(&L, NULL, eq, 1);
    CU_ASSERT(L.rc == 0 && !strcmp(L.cfg.train.out_dir, "a=b"));
    config_free(&L.cfg);
}

static void test_set_errors(void)
{
    SET_FAILS("train.steps=abc", "--set train.steps=abc: expected an integer");
    SET_FAILS("train.steps=1.5", "--set train.steps=1.5: expected an integer");
    SET_FAILS("train.steps=1e3", "--set train.steps=1e3: expected an integer");
    SET_FAILS("train.steps=", "--set train.steps=: expected an integer");
    SET_FAILS("train.steps= 5", "expected an integer");
    SET_FAILS("train.seed=99999999999999999999", "--set train.seed=99999999999999999999",
              "fits in 64 bits");
    SET_FAILS("train.steps=0", "--set train.steps=0: out of range [1, 1e9]");
    SET_FAILS("train.steps=3000000000", "--set train.steps=3000000000: out of range");
    SET_FAILS("train.lr=abc", "--set train.lr=abc: expected a number");
    SET_FAILS("train.lr=0.1x", "expected a number");
    SET_FAILS("train.lr=nan", "--set train.lr=nan", "finite");
    SET_FAILS("train.grad_clip=inf", "finite");
    SET_FAILS("train.lr=20", "--set train.lr=20: out of range (0, 10]");
    SET_FAILS("train.decay_embeddings=yes", "--set train.decay_embeddings=yes: expected true or false");
    SET_FAILS("train.decay=cosin", "--set train.decay=cosin: not one of cosine|linear|constant",
              "did you mean 'cosine'?");
    SET_FAILS("train.decay=\"\"", "not one of");
    SET_FAILS("synth.out=", "--set synth.out=: must not be empty");
    SET_FAILS("train.steps", "--set train.steps: expected section.key=value");
    SET_FAILS("train.lrr=0.1", "--set train.lrr=0.1: unknown key 'train.lrr'",
              "did you mean 'train.lr'?");
    SET_FAILS("trian.lr=0.1", "unknown key 'trian.lr'", "did you mean 'train.lr'?");
    SET_FAILS("lr=0.1", "unknown key 'lr'", "did you mean 'train.lr'?");
    SET_FAILS("=1", "unknown key ''");
}

static void test_round_trip(void)
{
    Loaded L;
    const char *sets[] = {
        "train.lr=0.1",          "train.min_lr_frac=0.3333333333333333",
        "train.grad_clip=1",     "train.adam_eps=1e-300",
        "train.weight_decay=10", "model.init_std=0.123456789012345678",
        "train.seed=9223372036854775807", "synth.seed=2147483648",
        "train.out_dir=we\"ird\\ path\n\ttab\x01",
        "model.init_from=\xc3\xa9t\xc3\xa9.h5", "train.decay=constant",
        "train.decay_embeddings=true", "runtime.threads=1024",
        "model.n_embd=96", "model.n_head=3",
    };
    load(&L, NULL, sets, (int)(sizeof sets / sizeof sets[0]));
    CU_ASSERT_EQUAL_FATAL(L.rc, 0);
    char *text = config_to_text(&L.cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "train: {\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "  lr = 0.1;\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "  grad_clip = 1.0;\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "  weight_decay = 10.0;\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "  seed = 9223372036854775807L;\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "  seed = 2147483648L;\n"));

    Loaded R;
    load(&R, text, NULL, 0);
    CU_ASSERT_EQUAL(R.rc, 0);
    if (R.rc != 0)
        fprintf(stderr, "\n  reload failed: %s\n  text:\n%s", R.err, text);
    CU_ASSERT(same_config(&L.cfg, &R.cfg));
    char *text2 = config_to_text(&R.cfg);
    CU_ASSERT_STRING_EQUAL(text, text2);
    free(text2);
    free(text);
    config_free(&R.cfg);
    config_free(&L.cfg);

    /* defaults too */
    PreferConfig d;
    config_defaults(&d);
    text = config_to_text(&d);
    load(&R, text, NULL, 0);
    CU_ASSERT(R.rc == 0 && same_config(&d, &R.cfg));
    free(text);
    config_free(&R.cfg);
    config_free(&d);
}

static void test_reference(void)
{
    char *ref = config_reference_text();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    CU_ASSERT_EQUAL(strncmp(ref, "# prefer configuration reference:", 33), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(ref, "do not edit by hand"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ref, "  # peak learning rate\n  # number in (0, 10]\n  lr = 0.003;\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ref, "# one of: cosine|linear|constant\n  decay = \"cosine\";\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ref, "runtime: {\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ref, "synth: {\n"));
    Loaded R;
    load(&R, ref, NULL, 0);
    CU_ASSERT_EQUAL(R.rc, 0);
    if (R.rc != 0)
        fprintf(stderr, "\n  reference does not load: %s\n", R.err);
    PreferConfig d;
    config_defaults(&d);
    CU_ASSERT(same_config(&d, &R.cfg));
    /* every key of the effective text appears in the reference with the same default */
    char *text = config_to_text(&d);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, " = "))
            CU_ASSERT_PTR_NOT_NULL(strstr(ref, line));
    free(text);
    config_free(&d);
    config_free(&R.cfg);
    free(ref);
}

/* Loading over a struct with strings frees the replaced ones (LeakSanitizer checks). */
static void test_no_leaks(void)
{
    PreferConfig c;
    config_defaults(&c);
    const char *s1[] = {"train.out_dir=one", "train.decay=linear"};
    const char *s2[] = {"train.out_dir=two", "model.init_from=x"};
    char path[64];
    write_tmp("train: { data = \"d.h5\"; };\n", path);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(config_load_checked(&c, path, s1, 2, NULL, 0), 0);
        CU_ASSERT_EQUAL(config_load_checked(&c, NULL, s2, 2, NULL, 0), 0);
    }
    unlink(path);
    CU_ASSERT_STRING_EQUAL(c.train.out_dir, "two");
    CU_ASSERT_STRING_EQUAL(c.train.decay, "linear");
    CU_ASSERT_STRING_EQUAL(c.train.data, "d.h5");
    CU_ASSERT_STRING_EQUAL(c.source, "");
    config_free(&c);
    /* reuse after config_free */
    config_defaults(&c);
    config_free(&c);
}

/* config_load ends the process with the message (exit 1) on error. */
static void test_load_dies(void)
{
    int fds[2];
    CU_ASSERT_FATAL(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        PreferConfig c;
        config_defaults(&c);
        const char *s[] = {"train.lrr=1"};
        config_load(&c, NULL, s, 1);
        _exit(0);
    }
    close(fds[1]);
    char buf[1024] = "";
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 1))
        fprintf(stderr, "\n  child status %d, stderr: %s\n", status, buf);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "--set train.lrr=1: unknown key 'train.lrr'"));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("config", NULL, NULL);
    if (!s)
        return 1;
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"defaults", test_defaults},
        {"load valid file", test_load_valid},
        {"error: file and syntax", test_error_file},
        {"error: unknown section/key", test_error_unknown},
        {"error: inside @include", test_error_include},
        {"error: wrong type", test_error_type},
        {"error: range and choice", test_error_range_choice},
        {"error: cross-key", test_error_cross},
        {"error leaves cfg unchanged", test_error_keeps_cfg},
        {"--set every type", test_set},
        {"--set order and details", test_set_details},
        {"--set errors", test_set_errors},
        {"to_text round trip", test_round_trip},
        {"reference text", test_reference},
        {"no leaks on reload", test_no_leaks},
        {"config_load dies", test_load_dies},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return 1;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    int err = CU_get_error();
    CU_cleanup_registry();
    return failures || err ? 1 : 0;
}
