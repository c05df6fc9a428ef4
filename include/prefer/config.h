/* config.h: libconfig files -> one validated, typed struct.
 *
 * Every key is declared once, in the table in src/config/config.c: {key, type, default,
 * range or choices, help}. From that table come the defaults, unknown-key / type / range
 * errors (naming file, line and key), `--set section.key=value` overrides, the reference
 * listing (`prefer config --reference`, checked in as configs/reference.cfg) and the
 * effective-config text stored in every file prefer writes.
 *
 * Strings in the struct are owned by it (freed by config_free).
 */
#ifndef PREFER_CONFIG_H
#define PREFER_CONFIG_H

#include <stdint.h>

typedef struct {
    int vocab_size; /* V */
    int context;    /* Tmax: longest sequence (prompt + response) */
    int n_layer;    /* L */
    int n_head;     /* NH */
    int n_embd;     /* C; multiple of n_head */
    double init_std;
    char *init_from; /* checkpoint to start from ("" = fresh random init) */
} ModelConfig;

typedef struct {
    char *objective;  /* "sft" (later: dpo, ipo, ...) */
    char *data;       /* training dataset (HDF5) */
    char *out_dir;    /* checkpoints and run log go here */
    int steps;        /* optimizer steps */
    int micro_batch;  /* sequences (sft) or pairs per rank per micro-step */
    int grad_accum;   /* micro-steps per optimizer step */
    double lr;
    double min_lr_frac; /* final lr = lr * min_lr_frac */
    int warmup_steps;
    char *decay;        /* "cosine" | "linear" | "constant" */
    double weight_decay;
    int decay_embeddings; /* bool: apply weight decay to wte/wpe too */
    double beta1, beta2, adam_eps;
    double grad_clip;   /* global-norm clip; 0 = off */
    int64_t seed;
    int log_every;      /* progress line every N steps */
    int ckpt_every;     /* checkpoint every N steps (0 = only at the end) */
    char *resume;       /* checkpoint to continue from: weights, optimizer, step ("" = none) */
} TrainConfig;

typedef struct {
    int threads;        /* threads per rank for BLAS and OpenMP; 0 = auto */
} RuntimeConfig;

typedef struct {
    char *out;          /* output file (HDF5) for the demo corpus */
    int n_prompts;
    int prompt_len;
    int response_len;
    int vocab_size;     /* tokens used by the task (<= model.vocab_size) */
    int64_t seed;
} SynthConfig;

typedef struct {
    ModelConfig model;
    TrainConfig train;
    RuntimeConfig runtime;
    SynthConfig synth;
    char *source; /* path of the file it was read from ("" for defaults only) */
} PreferConfig;

/* Fill cfg with every default (overwrites without freeing: config_free a used cfg first). */
void config_defaults(PreferConfig *cfg);

/* Read `path` over cfg, which must already hold a config (config_defaults, or an earlier
 * load), then apply the `n_sets` overrides "section.key=value".
 * Any error (syntax, unknown key, wrong type, out of range, bad choice, bad --set) ends the
 * job via die_user() with a message naming the file, line and key (or the --set argument).
 * path may be NULL: overrides only. Cross-key checks (n_embd % n_head, ...)
 * are done too. */
void config_load(PreferConfig *cfg, const char *path, const char *const *sets, int n_sets);

/* The same as config_load but returns 0 on success and -1 on error with the message in
 * err (size errlen; err may be NULL) instead of ending the job; on error cfg is left
 * unchanged. Used by tests. */
int config_load_checked(PreferConfig *cfg, const char *path, const char *const *sets, int n_sets,
                        char *err, int errlen);

/* The effective config as libconfig text, every key, one "key = value;" per line inside
 * "section: { ... };" groups. Readable back by config_load. Caller frees. */
char *config_to_text(const PreferConfig *cfg);

/* The reference listing: every key with its default, type, range and help as comments,
 * in libconfig syntax (this is configs/reference.cfg). Caller frees. */
char *config_reference_text(void);

/* Free the strings; the struct may be reused after config_defaults. NULL is harmless. */
void config_free(PreferConfig *cfg);

#endif
