/* test_train.c: SFT drives the loss near zero on a tiny repeated corpus; gradient
 * accumulation equals one big batch; a checkpoint round trip continues bit-identically;
 * a non-finite step dies without writing anything. */
#include "prefer/ckpt.h"
#include "prefer/config.h"
#include "prefer/gpt.h"
#include "prefer/prefdata.h"
#include "prefer/train.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* 4 prompts of 3 tokens, each with one fixed 6-token response: a deterministic map that a
 * model can learn exactly, so the NLL can go to ~0. */
static void tiny_corpus(PrefData *d)
{
    memset(d, 0, sizeof *d);
    d->n_prompts = d->n_responses = 4;
    d->vocab_size = 16;
    d->prompt_tokens = malloc(sizeof(int32_t) * 12);
    d->prompt_offsets = malloc(sizeof(int64_t) * 5);
    d->response_tokens = malloc(sizeof(int32_t) * 24);
    d->response_offsets = malloc(sizeof(int64_t) * 5);
    d->response_prompt = malloc(sizeof(int64_t) * 4);
    for (int p = 0; p < 4; p++) {
        d->prompt_offsets[p] = 3 * p;
        d->response_offsets[p] = 6 * p;
        d->response_prompt[p] = p;
        for (int i = 0; i < 3; i++) d->prompt_tokens[3 * p + i] = (int32_t)(1 + (p * 3 + i * 5) % 15);
        for (int i = 0; i < 6; i++) d->response_tokens[6 * p + i] = (int32_t)(1 + (p * 7 + i * 3 + 2) % 15);
    }
    d->prompt_offsets[4] = 12;
    d->response_offsets[4] = 24;
}

static void small_cfg(PreferConfig *c)
{
    config_defaults(c);
    c->model.vocab_size = 16;
    c->model.context = 16;
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.n_embd = 32;
    c->train.micro_batch = 4;
    c->train.steps = 150;
    c->train.lr = 1e-2;
    c->train.warmup_steps = 5;
    c->train.min_lr_frac = 0.1;
}

static void make_model(Gpt *m, const PreferConfig *c, int max_batch)
{
    GptDims d = {c->model.vocab_size, c->model.context, c->model.n_layer, c->model.n_head, c->model.n_embd};
    gpt_init(m, &d, max_batch);
    gpt_init_weights(m, (uint64_t)c->train.seed, c->model.init_std);
}

static void test_sft_memorises(void)
{
    PreferConfig c;
    small_cfg(&c);
    PrefData d;
    tiny_corpus(&d);
    Gpt m;
    make_model(&m, &c, c.train.micro_batch);
    Trainer t;
    trainer_init(&t, &c, &d, &m, 0, 1);
    StepStats st;
    double first = 0;
    for (int i = 0; i < c.train.steps; i++) {
        trainer_step(&t, &st);
        if (i == 0) first = st.loss;
    }
    printf("\n  SFT loss %.4f -> %.5f ", first, st.loss);
    CU_ASSERT(first > 2.0);      /* ~log 16 at init */
    CU_ASSERT(st.loss < 0.02);   /* memorised */
    CU_ASSERT(st.targets == 4 * 6); /* every response token, none of the prompt */
    trainer_free(&t);
    gpt_free(&m);
    prefdata_free(&d);
    config_free(&c);
}

static void test_accumulation_equals_big_batch(void)
{
    PreferConfig c1, c2;
    small_cfg(&c1);
    small_cfg(&c2);
    c1.train.micro_batch = 4; c1.train.grad_accum = 1;
    c2.train.micro_batch = 2; c2.train.grad_accum = 2;
    c1.train.steps = c2.train.steps = 5;
    PrefData d;
    tiny_corpus(&d);
    Gpt m1, m2;
    make_model(&m1, &c1, 4);
    make_model(&m2, &c2, 2);
    Trainer t1, t2;
    trainer_init(&t1, &c1, &d, &m1, 0, 1);
    trainer_init(&t2, &c2, &d, &m2, 0, 1);
    StepStats s1, s2;
    for (int i = 0; i < 5; i++) {
        trainer_step(&t1, &s1);
        trainer_step(&t2, &s2);
        CU_ASSERT(fabs(s1.loss - s2.loss) < 1e-5 * fabs(s1.loss));
        CU_ASSERT(fabs(s1.grad_norm - s2.grad_norm) < 1e-5 * s1.grad_norm);
        /* the (clipped) gradients of the step agree as vectors */
        double dd = 0, nn = 0;
        for (size_t j = 0; j < m1.num_params; j++) {
            double e = (double)m1.grads[j] - m2.grads[j];
            dd += e * e;
            nn += (double)m1.grads[j] * m1.grads[j];
        }
        CU_ASSERT(sqrt(dd) < 1e-5 * sqrt(nn));
    }
    /* Parameters: as vectors (Adam's per-element normalisation amplifies rounding in
     * elements whose gradient is ~0, so elementwise relative error is meaningless there). */
    double dd = 0, nn = 0;
    for (size_t i = 0; i < m1.num_params; i++) {
        double e = (double)m1.params[i] - m2.params[i];
        dd += e * e;
        nn += (double)m1.params[i] * m1.params[i];
    }
    CU_ASSERT(sqrt(dd) < 1e-4 * sqrt(nn));
    trainer_free(&t1); trainer_free(&t2); gpt_free(&m1); gpt_free(&m2);
    prefdata_free(&d); config_free(&c1); config_free(&c2);
}

static void test_resume_bit_identical(void)
{
    PreferConfig c;
    small_cfg(&c);
    c.train.steps = 20;
    PrefData d;
    tiny_corpus(&d);
    /* reference: 20 steps straight */
    Gpt a;
    make_model(&a, &c, 4);
    Trainer ta;
    trainer_init(&ta, &c, &d, &a, 0, 1);
    StepStats st;
    for (int i = 0; i < 20; i++) trainer_step(&ta, &st);
    /* 10 steps, save, fresh model and trainer from the file, 10 more */
    char path[] = "/tmp/prefer-test-resume-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    Gpt b;
    make_model(&b, &c, 4);
    Trainer tb;
    trainer_init(&tb, &c, &d, &b, 0, 1);
    for (int i = 0; i < 10; i++) trainer_step(&tb, &st);
    trainer_save(&tb, path);
    trainer_free(&tb);
    gpt_free(&b);
    Gpt b2;
    GptDims dd = {c.model.vocab_size, c.model.context, c.model.n_layer, c.model.n_head, c.model.n_embd};
    gpt_init(&b2, &dd, 4); /* no init: everything must come from the file */
    Trainer tb2;
    trainer_init(&tb2, &c, &d, &b2, 0, 1);
    trainer_load(&tb2, path);
    CU_ASSERT(tb2.step == 10);
    CU_ASSERT(tb2.opt.t == 10);
    for (int i = 0; i < 10; i++) trainer_step(&tb2, &st);
    CU_ASSERT(memcmp(a.params, b2.params, sizeof(float) * a.num_params) == 0);
    CU_ASSERT(memcmp(ta.opt.m, tb2.opt.m, sizeof(float) * a.num_params) == 0);
    CU_ASSERT(memcmp(ta.opt.v, tb2.opt.v, sizeof(float) * a.num_params) == 0);
    unlink(path);
    trainer_free(&ta); trainer_free(&tb2); gpt_free(&a); gpt_free(&b2);
    prefdata_free(&d); config_free(&c);
}

static void test_sampler(void)
{
    PreferConfig c;
    small_cfg(&c);
    PrefData d;
    tiny_corpus(&d);
    Gpt m;
    make_model(&m, &c, 4);
    Trainer t;
    trainer_init(&t, &c, &d, &m, 0, 1);
    /* each epoch is a permutation; epochs differ in order (with 4! = 24 orders, the first
     * 5 epochs all equal would be a broken shuffle) */
    int differ = 0;
    for (int e = 0; e < 5; e++) {
        int seen[4] = {0};
        for (int i = 0; i < 4; i++) seen[trainer_example_at(&t, 4 * e + i)]++;
        for (int i = 0; i < 4; i++) CU_ASSERT(seen[i] == 1);
        if (e > 0 && trainer_example_at(&t, 4 * e) != trainer_example_at(&t, 0)) differ = 1;
    }
    CU_ASSERT(differ);
    trainer_free(&t); gpt_free(&m); prefdata_free(&d); config_free(&c);
}

static void test_nan_dies(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        PreferConfig c;
        small_cfg(&c);
        PrefData d;
        tiny_corpus(&d);
        Gpt m;
        make_model(&m, &c, 4);
        m.params[m.tensors[5].offset] = NAN;
        Trainer t;
        trainer_init(&t, &c, &d, &m, 0, 1);
        StepStats st;
        trainer_step(&t, &st);
        _exit(0); /* must not get here */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

int main(void)
{
    gpt_set_threads(1);
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("train", NULL, NULL);
    CU_add_test(s, "sampler permutations", test_sampler);
    CU_add_test(s, "SFT memorises a tiny corpus", test_sft_memorises);
    CU_add_test(s, "accumulation equals a big batch", test_accumulation_equals_big_batch);
    CU_add_test(s, "checkpoint continues bit-identically", test_resume_bit_identical);
    CU_add_test(s, "non-finite loss dies", test_nan_dies);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
