/* synth.c: the synthetic task's teacher and corpora, and `prefer synth`.
 *
 * Does: build a seeded random first-order Markov teacher, sample the SFT demo corpus from
 * it, compute the lowest achievable SFT loss, write the corpus with prefdata_write.
 * Does not (yet): hidden rewards, preference pairs, the exact KL-regularised optimum; those
 * grow from the teacher here (DESIGN.md, "The synthetic task").
 *
 * Randomness: the teacher's logits come from stream SYNTH_STREAM_TEACHER of synth.seed; the
 * corpus from stream SYNTH_STREAM_CORPUS, one uniform draw per sampled token, prompt i using
 * draws [i*D, (i+1)*D) with D = prompt_len + response_len - 1, so any prompt can be
 * regenerated alone and the result does not depend on rank or thread count.
 */
#include "prefer/synth.h"
#include "prefer/cli.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void synth_teacher_init(SynthTeacher *t, int vocab, uint64_t seed)
{
    if (vocab < 2 || vocab > SYNTH_MAX_VOCAB)
        die_user("synth: synth.vocab_size = %d is outside [2, %d] (token 0 is end-of-sequence; "
                 "the teacher is a dense V x V table)",
                 vocab, SYNTH_MAX_VOCAB);
    memset(t, 0, sizeof *t);
    const size_t V = (size_t)vocab;
    t->vocab = vocab;
    t->prob = xcalloc(V * V, sizeof(double));
    t->cdf = xcalloc(V * V, sizeof(double));
    t->row_entropy = xcalloc(V, sizeof(double));

    Rng r;
    rng_init(&r, seed, SYNTH_STREAM_TEACHER);
    /* row 0: the start state, uniform over 1..V-1 */
    for (size_t b = 1; b < V; b++)
        t->prob[b] = 1.0 / (double)(V - 1);
    for (size_t a = 1; a < V; a++) {
        double *p = t->prob + a * V;
        double mx = -INFINITY;
        for (size_t b = 1; b < V; b++) {
            p[b] = SYNTH_LOGIT_SCALE * rng_normal(&r);
            mx = fmax(mx, p[b]);
        }
        double z = 0.0;
        for (size_t b = 1; b < V; b++) {
            p[b] = exp(p[b] - mx);
            z += p[b];
        }
        for (size_t b = 1; b < V; b++)
            p[b] /= z;
    }
    for (size_t a = 0; a < V; a++) {
        const double *p = t->prob + a * V;
        double *c = t->cdf + a * V, acc = 0.0, h = 0.0;
        for (size_t b = 0; b < V; b++) {
            acc += p[b];
            c[b] = acc;
            if (p[b] > 0.0)
                h -= p[b] * log(p[b]);
        }
        c[V - 1] = 1.0; /* rounding must never leave a gap above the last token */
        t->row_entropy[a] = h;
    }
}

void synth_teacher_free(SynthTeacher *t)
{
    if (!t)
        return;
    free(t->prob);
    free(t->cdf);
    free(t->row_entropy);
    memset(t, 0, sizeof *t);
}

int32_t synth_teacher_sample(const SynthTeacher *t, int prev, Rng *r)
{
    const double *c = t->cdf + (size_t)prev * (size_t)t->vocab;
    const double u = rng_uniform(r); /* [0, 1) */
    /* first b with c[b] > u; c[0] = 0 <= u, c[V-1] = 1 > u, so b lands in [1, V) */
    int lo = 0, hi = t->vocab - 1;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (c[mid] > u)
            hi = mid;
        else
            lo = mid;
    }
    /* a zero-probability token (underflowed exp) has c[b] == c[b-1] and is never chosen */
    return (int32_t)hi;
}

double synth_teacher_logprob(const SynthTeacher *t, int prev, int next)
{
    double p = t->prob[(size_t)prev * (size_t)t->vocab + (size_t)next];
    return p > 0.0 ? log(p) : -INFINITY;
}

double synth_teacher_entropy_rate(const SynthTeacher *t)
{
    /* Power iteration for the stationary distribution of tokens 1..V-1. Every transition
     * among them has positive probability (softmax), so the chain is irreducible and
     * aperiodic and the iteration converges geometrically. */
    const size_t V = (size_t)t->vocab;
    double *pi = xcalloc(V, sizeof(double)), *nx = xcalloc(V, sizeof(double));
    for (size_t a = 1; a < V; a++)
        pi[a] = 1.0 / (double)(V - 1);
    for (int it = 0; it < 10000; it++) {
        memset(nx, 0, V * sizeof(double));
        for (size_t a = 1; a < V; a++)
            for (size_t b = 1; b < V; b++)
                nx[b] += pi[a] * t->prob[a * V + b];
        double diff = 0.0;
        for (size_t b = 1; b < V; b++) {
            diff += fabs(nx[b] - pi[b]);
            pi[b] = nx[b];
        }
        if (diff < 1e-14)
            break;
    }
    double h = 0.0;
    for (size_t a = 1; a < V; a++)
        h += pi[a] * t->row_entropy[a];
    free(pi);
    free(nx);
    return h;
}

void synth_make_corpus(const SynthConfig *cfg, PrefData *out, double *entropy)
{
    if (cfg->n_prompts < 1 || cfg->prompt_len < 1 || cfg->response_len < 1)
        die_user("synth: n_prompts, prompt_len and response_len must be at least 1 "
                 "(got %d, %d, %d)",
                 cfg->n_prompts, cfg->prompt_len, cfg->response_len);
    SynthTeacher t;
    synth_teacher_init(&t, cfg->vocab_size, (uint64_t)cfg->seed);

    const int64_t P = cfg->n_prompts, Lp = cfg->prompt_len, Lr = cfg->response_len;
    memset(out, 0, sizeof *out);
    out->n_prompts = P;
    out->n_responses = P;
    out->n_pairs = 0;
    out->vocab_size = cfg->vocab_size;
    out->prompt_tokens = xmalloc((size_t)(P * Lp) * sizeof(int32_t));
    out->prompt_offsets = xmalloc((size_t)(P + 1) * sizeof(int64_t));
    out->response_tokens = xmalloc((size_t)(P * Lr) * sizeof(int32_t));
    out->response_offsets = xmalloc((size_t)(P + 1) * sizeof(int64_t));
    out->response_prompt = xmalloc((size_t)P * sizeof(int64_t));

    Rng r;
    rng_init(&r, (uint64_t)cfg->seed, SYNTH_STREAM_CORPUS);
    const uint64_t draws = (uint64_t)(Lp + Lr - 1);
    double h_sum = 0.0; /* teacher entropy summed over response positions */
    for (int64_t i = 0; i < P; i++) {
        r.counter = (uint64_t)i * draws;
        int32_t *pt = out->prompt_tokens + i * Lp;
        int32_t *rt = out->response_tokens + i * Lr;
        int prev = 0; /* the start state */
        for (int64_t j = 0; j < Lp; j++)
            prev = pt[j] = synth_teacher_sample(&t, prev, &r);
        for (int64_t j = 0; j < Lr - 1; j++) {
            h_sum += t.row_entropy[prev];
            prev = rt[j] = synth_teacher_sample(&t, prev, &r);
        }
        rt[Lr - 1] = SYNTH_EOS;
        out->prompt_offsets[i] = i * Lp;
        out->response_offsets[i] = i * Lr;
        out->response_prompt[i] = i;
    }
    out->prompt_offsets[P] = P * Lp;
    out->response_offsets[P] = P * Lr;
    if (entropy)
        *entropy = h_sum / (double)(P * Lr);
    synth_teacher_free(&t);
}

void synth_write_entropy_attr(const char *path, double entropy)
{
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        die("cannot reopen %s to store teacher_entropy", path);
    h5u_attr_f64(f, "teacher_entropy", entropy);
    if (H5Fclose(f) < 0)
        die("closing %s after storing teacher_entropy failed (disk full?)", path);
}

/* mkdir -p of the directory part of path; dies (user error) naming the directory. */
static void make_parent_dirs(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        free(dir);
        return;
    }
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(dir, 0777) != 0 && errno != EEXIST)
                die_user("synth: cannot create directory %s for %s: %s", dir, path,
                         strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        die_user("synth: %s is not a directory (needed for %s)", dir, path);
    free(dir);
}

static const char synth_usage[] =
    "usage: prefer synth [CONFIG] [--set section.key=value ...] [--help]\n"
    "\n"
    "Sample the demo SFT corpus from the synthetic Markov teacher and write it to synth.out\n"
    "(HDF5, format prefer.prefdata): synth.n_prompts prompts of synth.prompt_len tokens, one\n"
    "response each of synth.response_len tokens ending with token 0 (end of sequence), over\n"
    "synth.vocab_size tokens, seeded by synth.seed. Prints the teacher's entropy, the lowest\n"
    "SFT loss a model can reach on it, also stored as the file attribute teacher_entropy.\n"
    "Only rank 0 works; run it without mpirun.\n";

int cmd_synth(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    static const char *const allowed[] = {NULL};
    cli_check_flags(&a, "synth", allowed);
    if (a.help) {
        say("%s", synth_usage);
        return 0;
    }
    if (a.n_pos > 1) {
        if (util_rank() == 0)
            fprintf(stderr, "prefer: synth takes one CONFIG, got extra argument '%s' (try --help)\n",
                    a.pos[1]);
        return PREFER_EXIT_USAGE;
    }
    /* every rank loads the config so that a bad file fails everywhere the same way */
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    cli_print_config(&cfg);
    if (util_rank() != 0) {
        config_free(&cfg);
        return 0;
    }
    const SynthConfig *sc = &cfg.synth;
    if (!sc->out || !sc->out[0])
        die_user("synth: synth.out is empty (set it in the config or --set synth.out=FILE)");
    if (sc->vocab_size > cfg.model.vocab_size)
        warn("synth.vocab_size = %d exceeds model.vocab_size = %d: training this config "
             "on the corpus will be refused",
             sc->vocab_size, cfg.model.vocab_size);
    if (sc->prompt_len + sc->response_len > cfg.model.context)
        warn("synth.prompt_len + synth.response_len = %d exceeds model.context = %d",
             sc->prompt_len + sc->response_len, cfg.model.context);

    double t0 = now_s();
    PrefData d;
    double h;
    synth_make_corpus(sc, &d, &h);
    make_parent_dirs(sc->out);
    char *text = config_to_text(&cfg);
    prefdata_write(sc->out, &d, text);
    synth_write_entropy_attr(sc->out, h);
    say("synth: wrote %lld prompts to %s; teacher entropy %.4f nats/token = the lowest "
        "achievable SFT loss (%.2f s)\n",
        (long long)d.n_prompts, sc->out, h, now_s() - t0);
    free(text);
    prefdata_free(&d);
    config_free(&cfg);
    return 0;
}
