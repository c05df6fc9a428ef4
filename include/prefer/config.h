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
    char *objective;  /* loss term names, comma-separated ("dpo", "dpo,sft"): see losses.h */
    char *loss_weights; /* "" = all 1, else one number per objective term */
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
    char *ref;          /* reference checkpoint for preference losses ("" = model.init_from) */
    char *ref_mix;      /* geometric-mixture partner of ref ("" = none) */
    double ref_alpha;   /* log pi_ref = ref_alpha log pi_ref_mix + (1 - ref_alpha) log pi_ref */
    char *ref_cache;    /* "auto" | "require" | "off": reference log-probs cached in the dataset file */
    int prefix_sharing; /* bool: a pair's prompt computed once for both responses */
    int log_flush_every; /* run log rows buffered before a write + flush */
    int keep_ckpts;     /* newest checkpoints kept in out_dir (0 = all) */
    int check_every;    /* compare a hash of the parameters across ranks every N steps (0 = never) */
} TrainConfig;

typedef struct {
    double beta;            /* KL strength (IPO: tau) */
    double label_smoothing; /* eps of cdpo, robust, exo_pair, aot, aot_unpaired */
    char *ipo_normalize;    /* "sum" | "token_mean" */
    double simpo_gamma;     /* SimPO target margin gamma */
    double discopop_tau;    /* DiscoPOP mixing temperature */
} LossConfig;

typedef struct {
    char *checkpoint;   /* model to sample from */
    char *data;         /* prefdata file whose prompts are used */
    char *out;          /* prefdata file written: the prompts, n responses each, no pairs */
    int n;              /* responses per prompt */
    double temperature; /* 0 = greedy */
    int top_k;          /* 0 = off */
    double top_p;       /* 1 = off */
    int max_len;        /* most tokens per response */
    int eos;            /* end token (kept in the response); -1 = none */
    int64_t seed;
    int batch;          /* sequences per KV-cache step */
    char *tokenizer;    /* "" = none; else decoded samples are printed */
    int print;          /* how many decoded samples to print */
} SampleConfig;

typedef struct {
    int threads;        /* threads per rank for BLAS and OpenMP; 0 = auto */
} RuntimeConfig;

typedef struct {
    char *select;       /* "none" | "top" | "bottom" | "random" | "proportional" */
    double frac;        /* share of prompts kept */
    double temperature; /* proportional: weight PVar^(1/temperature) */
    int every;          /* reselect every N epochs; 0 = once, before training */
    double max_share;   /* model source: selections' largest predicted share of the time (lengthens every) */
    char *source;       /* "model" (the policy's implicit rewards) | "scores" */
    double beta;        /* model: sigma(beta (h_i - h_j)); 0 = loss.beta */
    double scale;       /* scores: sigma(scale (s_i - s_j)) */
    int64_t seed;
    int grad_norm_sample; /* prompts whose per-prompt gradient norm is logged at each selection */
    char *log_pvar;     /* "all": every prompt's PVar and flag; "histogram": counts (for huge datasets) */
} CurriculumConfig;

typedef struct {
    char *out;          /* training preference file (HDF5): K responses per prompt, pairs */
    char *sft_out;      /* SFT demonstrations: one teacher response per prompt ("" = skip) */
    char *heldout_out;  /* held-out prompts with K responses and pairs ("" = skip) */
    int n_prompts;      /* training prompts (SFT and preference files) */
    int n_heldout;      /* held-out prompts */
    int prompt_len;
    int response_len;
    int vocab_size;     /* tokens used by the task (<= model.vocab_size) */
    int64_t seed;
    int k;              /* responses per prompt in the preference files */
    char *pairs;        /* "all" | "best_worst" */
    double label_temp;  /* Bradley-Terry temperature of the labels */
    double label_noise; /* probability of flipping a label */
    double reward_scale;          /* median care of a caring prompt */
    double care_sigma;            /* log-normal spread of the cares */
    double care_indifferent;      /* share of near-indifferent prompts */
    double care_indifferent_scale;/* their care relative to the others */
    /* DID data (docs/did.md): "teacher" = the K teacher responses and Bradley-Terry pairs above */
    char *rejected_from; /* "teacher" | "reference" | "did" | "mix" */
    char *chosen_from;   /* "optimum" | "reference" | "reference_best" */
    double did_mix;      /* mix: probability of a rejected response from the DID sampler */
    char *did_ref;       /* reference checkpoint ("" = the teacher, exactly) */
    int did_pairs;       /* pairs per prompt */
    int64_t did_max_responses;
} SynthConfig;

typedef struct {
    char *in;           /* prefdata file with K responses per prompt to label */
    char *out;          /* the labelled preference file */
    char *reward;       /* "score" | "lexicon" */
    char *lexicon;      /* lexicon file or folder (reward = lexicon) */
    char *tokenizer;    /* tokenizer directory (reward = lexicon) */
} LabelConfig;

typedef struct {
    char *policy;       /* checkpoint to evaluate */
    char *ref;          /* reference checkpoint */
    char *data;         /* held-out prompts and pairs (HDF5) */
    int n_samples;      /* responses per prompt from each model */
    double temperature;
    int max_len;
    int64_t seed;
    int batch;
    char *out;          /* results file (HDF5, format prefer.eval); "" = none */
    int frontier_points; /* points of the exact optimum's reward/KL curve written to out */
    int log;            /* bool: append the results to the policy's run log (its directory's run.h5) */
    char *reward;       /* "true" | "lexicon" */
    char *lexicon;      /* lexicon file or folder (reward = lexicon) */
    char *tokenizer;    /* tokenizer directory (reward = lexicon) */
    int eos;            /* end token of sampled responses; -1 = none */
} EvalConfig;

typedef struct {
    char *data;         /* prefdata file whose prompts get a PVar */
    char *source;       /* "model" (implicit rewards of policy vs ref) | "scores" (/responses/score) */
    char *policy;       /* checkpoints of source = "model" */
    char *ref;
    double beta;        /* coefficient of the implicit rewards (model) */
    double scale;       /* coefficient of the score differences (scores) */
    int batch;          /* sequences per forward pass (model) */
    char *out;          /* results file (HDF5, format prefer.pvar) */
    char *select;       /* "none" | "top" | "bottom" | "random" | "proportional" */
    double frac;        /* share of the valid prompts selected, (0, 1] */
    double temperature; /* proportional: weights PVar^(1/temperature) */
    int64_t seed;       /* random and proportional */
    char *select_out;   /* prefdata file of the selected prompts ("" = none) */
} PvarConfig;

typedef struct {
    char *policy;       /* checkpoint whose exact distributions are computed */
    char *ref;          /* reference checkpoint */
    char *data;         /* prefdata file of the synthetic task: its prompts and pairs */
    double beta;        /* pi* ~ pi_ref exp(r / beta); 0 = loss.beta */
    char *out;          /* results file (HDF5, format prefer.exact) */
    char *runlog;       /* run log to append a summary row to ("" = none) */
    int64_t max_responses; /* most responses per prompt the space may have */
    int n_prompts;      /* the first N prompts of data (0 = all) */
    int save_distributions; /* bool: also store every prompt's log-prob arrays */
} ExactConfig;

typedef struct {
    char *family;       /* "cyclic" | "transitive" | "file": where P comes from */
    int n;              /* classes of the built-in families */
    double advantage;   /* cyclic: a, Pr(i beats i+1) = 1/2 + a */
    char *rewards;      /* transitive: comma list of n class rewards ("" = evenly spaced) */
    double reward_gap;  /* transitive, rewards = "": r_i = reward_gap * (n - 1 - i) */
    char *p_file;       /* family = file: HDF5 (dataset /P) or text matrix */
    char *pi0;          /* initial policy: comma list of n weights ("" = uniform) */
    char *pi_ref;       /* base reference: comma list ("" = pi0) */
    double perturb;     /* added to class 0's log-probability of the starting policy */
    char *alpha;        /* grids: comma lists of numbers or lo:hi:count ranges */
    char *beta;
    char *lambda;
    int rounds;         /* R */
    int window;         /* W: the last rounds judged */
    double tol;         /* converged: every step in the window below this (L1) */
    double cycle_tol;   /* oscillating: cycle strength above this */
    double collapse_entropy; /* collapsed: final entropy below this (nats) */
    char *trajectories; /* "alpha,beta,lambda; ..." points whose whole trajectory is saved */
    char *out;          /* results file (HDF5, format prefer.dynamics) */
} DynamicsConfig;

typedef struct {
    char *out_dir;      /* rounds, checkpoints and the run log */
    char *init;         /* pi_0: the initial policy and first reference ("" = model.init_from) */
    char *data;         /* prompts (a prefdata file of the synthetic task) */
    int rounds;         /* R */
    int k;              /* responses sampled per prompt per round */
    double lambda;      /* on-policy share of the sampler */
    double alpha;       /* weight of pi_t in the geometric-mixture reference */
    int steps;          /* training steps per round */
    char *oracle;       /* "bt" (true reward, Bradley-Terry) | "cyclic" (rock-paper-scissors classes) */
    double cyclic_a;    /* advantage a of the cyclic oracle */
    int classes;        /* response classes of the cyclic oracle: first response token mod classes */
    int64_t seed;
    int64_t exact_max;  /* exact per-round statistics when the task has at most this many responses (0 = never) */
} IterateConfig;

typedef struct {
    char *input;        /* JSONL file */
    char *output;       /* prefdata file written */
    char *tokenizer;    /* tokenizer directory (bpe.h) */
    char *format;       /* "auto" | "explicit" | "implicit" | "conversational" | "scored" */
    char *pairs;        /* scored: "all" | "best_worst" */
    char *score_key;    /* scored: the score field ("auto" = score, fine-grained_score, overall_score) */
    int max_prompt_tokens;   /* keep the last N (0 = no limit) */
    int max_response_tokens; /* keep the first N (0 = no limit) */
    int max_total_tokens;    /* drop responses whose prompt + response is longer (0 = no limit) */
    int append_eot;     /* bool: end responses with <|endoftext|> */
    int skip_malformed; /* bool */
    char *template_system, *template_user, *template_assistant; /* "{content}" once each */
    char *template_generation_prompt; /* opening of the assistant's turn */
} ImportConfig;

typedef struct {
    ModelConfig model;
    TrainConfig train;
    LossConfig loss;
    SampleConfig sample;
    RuntimeConfig runtime;
    CurriculumConfig curriculum;
    SynthConfig synth;
    LabelConfig label;
    EvalConfig eval;
    PvarConfig pvar;
    ExactConfig exact;
    DynamicsConfig dynamics;
    IterateConfig iterate;
    ImportConfig import;
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
