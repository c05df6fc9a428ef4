/* test_train.c: SFT drives the loss near zero on a tiny repeated corpus; gradient
 * accumulation equals one big batch; a checkpoint round trip continues bit-identically;
 * a non-finite step dies without writing anything. */
#include "prefer/ckpt.h"
#include "prefer/config.h"
#include "prefer/gpt.h"
#include "prefer/losses.h"
#include "prefer/rng.h"
#include "prefer/prefdata.h"
#include "prefer/reflogp.h"
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


/* 3 prompts x 3 responses of different lengths, the 3 pairs of each prompt. */
static void tiny_pairs(PrefData *d)
{
    memset(d, 0, sizeof *d);
    Rng r;
    rng_init(&r, 99, 0);
    d->n_prompts = 3;
    d->n_responses = 9;
    d->n_pairs = 9;
    d->vocab_size = 16;
    d->prompt_tokens = malloc(sizeof(int32_t) * 12);
    d->prompt_offsets = malloc(sizeof(int64_t) * 4);
    d->response_tokens = malloc(sizeof(int32_t) * 9 * 6);
    d->response_offsets = malloc(sizeof(int64_t) * 10);
    d->response_prompt = malloc(sizeof(int64_t) * 9);
    d->pair_chosen = malloc(sizeof(int64_t) * 9);
    d->pair_rejected = malloc(sizeof(int64_t) * 9);
    int64_t po = 0, ro = 0;
    for (int p = 0; p < 3; p++) {
        d->prompt_offsets[p] = po;
        for (int i = 0; i < 2 + p; i++) d->prompt_tokens[po++] = (int32_t)(1 + rng_below(&r, 15));
        for (int k = 0; k < 3; k++) {
            int e = 3 * p + k;
            d->response_offsets[e] = ro;
            d->response_prompt[e] = p;
            for (int i = 0; i < 4 + k; i++) d->response_tokens[ro++] = (int32_t)(1 + rng_below(&r, 15));
        }
        /* transitive: response 0 > 1 > 2 */
        int cw[3] = {0, 0, 1}, cl[3] = {1, 2, 2};
        for (int k = 0; k < 3; k++) {
            d->pair_chosen[3 * p + k] = 3 * p + cw[k];
            d->pair_rejected[3 * p + k] = 3 * p + cl[k];
        }
    }
    d->prompt_offsets[3] = po;
    d->response_offsets[9] = ro;
}

typedef struct { Trainer *t; } GradCtx;

static double loss_of(Trainer *t)
{
    StepStats st;
    trainer_grad(t, &st);
    return st.loss;
}

/* For every objective: the trainer's loss gradient through the model equals central
 * differences along random directions; prefix sharing changes nothing. */
static void test_pref_gradients(void)
{
    PrefData d;
    tiny_pairs(&d);
    double ref[9];
    Rng r;
    rng_init(&r, 5, 5);
    for (int k = 0; k < LOSS_NKINDS; k++) {
        for (int share = 1; share >= 0; share--) {
            PreferConfig c;
            small_cfg(&c);
            free(c.train.objective);
            c.train.objective = xstrdup(loss_name(k));
            c.train.micro_batch = 3;
            c.train.grad_accum = 1;
            c.train.prefix_sharing = share;
            c.loss.beta = 0.5;
            c.loss.label_smoothing = 0.1;
            int mb, ms;
            trainer_model_shape(&c, &d, &mb, &ms);
            Gpt m;
            GptDims dd = {c.model.vocab_size, c.model.context, c.model.n_layer, c.model.n_head, c.model.n_embd};
            gpt_init_seq(&m, &dd, mb, ms);
            gpt_init_weights(&m, 3, 0.2);
            /* reference near the policy (every term in its active, curved region) */
            Gpt r0;
            gpt_init_infer(&r0, &dd, 18, reflogp_seq_len(&d));
            memcpy(r0.params, m.params, 4 * m.num_params);
            reflogp_compute(&r0, &d, 0, 1, 18, ref);
            gpt_free(&r0);
            for (int i = 0; i < 9; i++) ref[i] += 0.5 * rng_normal(&r);
            Trainer t;
            trainer_init(&t, &c, &d, &m, 0, 1);
            trainer_set_ref(&t, ref);
            double L0 = loss_of(&t);
            float *g = malloc(4 * m.num_params);
            memcpy(g, m.grads, 4 * m.num_params);
            double worst = 0;
            for (int rep = 0; rep < 2; rep++) {
                float *p0 = malloc(4 * m.num_params);
                memcpy(p0, m.params, 4 * m.num_params);
                double h = 2.5e-3, nv = 0, an = 0; /* truncation error shrinks ~h^4: discopop needs it small */
                float *v = malloc(4 * m.num_params);
                /* along the gradient (a strong signal: a random direction in this many
                 * dimensions sees only ~|g|/sqrt(n), below float noise), then along the
                 * gradient plus an equally long random part */
                double gn = 0;
                for (size_t i = 0; i < m.num_params; i++) gn += (double)g[i] * g[i];
                gn = sqrt(gn / m.num_params);
                for (size_t i = 0; i < m.num_params; i++) {
                    v[i] = g[i] + (rep ? (float)(gn * rng_normal(&r)) : 0.0f);
                    nv += (double)v[i] * v[i];
                }
                nv = sqrt(nv);
                /* fourth-order central difference (some terms, e.g. discopop with a small
                 * tau, curve sharply): f'(0) ~ [8(f(h/2)-f(-h/2)) - (f(h)-f(-h))] / (6h) */
                double f[4], steps[4] = {h, -h, h / 2, -h / 2};
                for (int q = 0; q < 4; q++) {
                    for (size_t i = 0; i < m.num_params; i++) m.params[i] = p0[i] + (float)(steps[q] * v[i] / nv);
                    f[q] = loss_of(&t);
                }
                memcpy(m.params, p0, 4 * m.num_params);
                double fd = (8 * (f[2] - f[3]) - (f[0] - f[1])) / (6 * h);
                for (size_t i = 0; i < m.num_params; i++) an += (double)g[i] * v[i] / nv;
                double e = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-4);
                worst = e > worst ? e : worst;
                free(v);
                free(p0);
            }
            if (getenv("PREFER_TEST_VERBOSE") || worst > 1e-3)
                printf("\n  %s (share %d): loss %.6g, worst directional error %.3g", loss_name(k), share, L0, worst);
            CU_ASSERT(isfinite(L0));
            CU_ASSERT(worst < 1e-3);
            free(g);
            trainer_free(&t);
            gpt_free(&m);
            config_free(&c);
        }
    }
    prefdata_free(&d);
}

/* Prefix sharing and the micro-batch split change neither the loss nor the gradient. */
static void test_pref_invariance(void)
{
    PrefData d;
    tiny_pairs(&d);
    double ref[9];
    for (int i = 0; i < 9; i++) ref[i] = -9.0 + 0.3 * i;
    double L[3];
    float *G[3];
    size_t np = 0;
    for (int v = 0; v < 3; v++) {
        PreferConfig c;
        small_cfg(&c);
        free(c.train.objective);
        c.train.objective = xstrdup("dpo,sft");
        c.train.micro_batch = v == 2 ? 1 : 3;
        c.train.grad_accum = v == 2 ? 3 : 1;
        c.train.prefix_sharing = v != 1;
        int mb, ms;
        trainer_model_shape(&c, &d, &mb, &ms);
        Gpt m;
        GptDims dd = {c.model.vocab_size, c.model.context, c.model.n_layer, c.model.n_head, c.model.n_embd};
        gpt_init_seq(&m, &dd, mb, ms);
        gpt_init_weights(&m, 4, 0.2);
        Trainer t;
        trainer_init(&t, &c, &d, &m, 0, 1);
        trainer_set_ref(&t, ref);
        L[v] = loss_of(&t);
        np = m.num_params;
        G[v] = malloc(4 * np);
        memcpy(G[v], m.grads, 4 * np);
        trainer_free(&t);
        gpt_free(&m);
        config_free(&c);
    }
    for (int v = 1; v < 3; v++) {
        CU_ASSERT(fabs(L[v] - L[0]) < 1e-6 * (1 + fabs(L[0])));
        double dd = 0, nn = 0;
        for (size_t i = 0; i < np; i++) {
            double e = (double)G[v][i] - G[0][i];
            dd += e * e;
            nn += (double)G[0][i] * G[0][i];
        }
        CU_ASSERT(sqrt(dd) < 1e-5 * sqrt(nn));
    }
    for (int v = 0; v < 3; v++) free(G[v]);
    prefdata_free(&d);
}

/* DPO from a reference equal to the initial policy: loss starts at log 2 and the
 * preference accuracy on the training pairs rises. */
static void test_dpo_learns(void)
{
    PrefData d;
    tiny_pairs(&d);
    PreferConfig c;
    small_cfg(&c);
    free(c.train.objective);
    c.train.objective = xstrdup("dpo");
    c.train.micro_batch = 9;
    c.train.steps = 60;
    c.loss.beta = 0.5;
    int mb, ms;
    trainer_model_shape(&c, &d, &mb, &ms);
    Gpt m;
    GptDims dd = {c.model.vocab_size, c.model.context, c.model.n_layer, c.model.n_head, c.model.n_embd};
    gpt_init_seq(&m, &dd, mb, ms);
    gpt_init_weights(&m, 4, 0.02);
    /* reference = the initial policy */
    Gpt r0;
    gpt_init_infer(&r0, &dd, 18, reflogp_seq_len(&d));
    memcpy(r0.params, m.params, 4 * m.num_params);
    double ref[9];
    reflogp_compute(&r0, &d, 0, 1, 18, ref);
    Trainer t;
    trainer_init(&t, &c, &d, &m, 0, 1);
    trainer_set_ref(&t, ref);
    StepStats st, first;
    memset(&first, 0, sizeof first);
    for (int i = 0; i < c.train.steps; i++) {
        trainer_step(&t, &st);
        if (i == 0) first = st;
    }
    CU_ASSERT(fabs(first.loss - log(2.0)) < 1e-4);
    CU_ASSERT(fabs(first.rewards_margins) < 1e-4);
    CU_ASSERT(st.loss < 0.3);
    CU_ASSERT(st.rewards_accuracies == 1.0);
    trainer_free(&t);
    gpt_free(&m);
    gpt_free(&r0);
    config_free(&c);
    prefdata_free(&d);
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
    CU_add_test(s, "every objective: gradient through the model (finite differences)", test_pref_gradients);
    CU_add_test(s, "prefix sharing and batch split leave loss and gradient unchanged", test_pref_invariance);
    CU_add_test(s, "DPO learns the training preferences", test_dpo_learns);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
