/* config.c: libconfig files and --set overrides -> one validated PreferConfig.
 *
 * Every key is one line of KEYS below: name, type, field, default, range or choices, help.
 * Defaults, the walk over a file (unknown sections and keys, with a did-you-mean hint), type,
 * range and choice checks, --set parsing, the effective-config text and the reference listing
 * are all driven by that table, so adding a key is one table line plus the struct field.
 *
 * A load works on a copy and replaces the caller's struct only when everything is valid, so a
 * failed config_load_checked leaves cfg as it was.
 *
 * Does not: know what values mean beyond their ranges (the few cross-key rules are in
 * check_cross), touch MPI (every rank reads the file itself), or keep libconfig objects alive
 * after a load.
 */
#define _GNU_SOURCE
#include "prefer/config.h"
#include "prefer/losses.h"
#include "prefer/util.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef enum { KT_INT, KT_INT64, KT_FLOAT, KT_BOOL, KT_STRING, KT_CHOICE } KeyType;

#define KF_NONEMPTY 1 /* strings: "" is rejected */

typedef struct {
    const char *key;     /* "section.name" */
    KeyType type;
    size_t off;          /* offsetof into PreferConfig */
    const char *def;     /* default, written as for --set */
    const char *range;   /* numbers: "[lo, hi]", '(' / ')' for open ends, "inf" allowed */
    const char *choices; /* KT_CHOICE: "a|b|c" */
    int flags;
    const char *help;
} KeySpec;

/* offsetof that does not compile when the field's C type does not match the key type. */
#define FIELD(f, T)                                                                            \
    (offsetof(PreferConfig, f) +                                                               \
     0 * sizeof(char[_Generic(((PreferConfig *)0)->f, T : 1, default : -1)]))

#define K_INT(k, f, def, range, help) {k, KT_INT, FIELD(f, int), def, range, NULL, 0, help}
#define K_INT64(k, f, def, range, help) {k, KT_INT64, FIELD(f, int64_t), def, range, NULL, 0, help}
#define K_FLOAT(k, f, def, range, help) {k, KT_FLOAT, FIELD(f, double), def, range, NULL, 0, help}
#define K_BOOL(k, f, def, help) {k, KT_BOOL, FIELD(f, int), def, NULL, NULL, 0, help}
#define K_STRING(k, f, def, flags, help) {k, KT_STRING, FIELD(f, char *), def, NULL, NULL, flags, help}
#define K_CHOICE(k, f, def, choices, help) {k, KT_CHOICE, FIELD(f, char *), def, NULL, choices, 0, help}

/* Keys of one section must be adjacent (the text output groups them in this order). */
static const KeySpec KEYS[] = {
    K_INT("model.vocab_size", model.vocab_size, "64", "[2, 16777216]", "vocabulary size V (token ids 0 .. V-1)"),
    K_INT("model.context", model.context, "64", "[2, 1048576]", "longest sequence Tmax in tokens (prompt + response)"),
    K_INT("model.n_layer", model.n_layer, "2", "[1, 256]", "transformer blocks L"),
    K_INT("model.n_head", model.n_head, "4", "[1, 1024]", "attention heads NH; must divide n_embd"),
    K_INT("model.n_embd", model.n_embd, "64", "[1, 16384]", "channels C; a multiple of n_head"),
    K_FLOAT("model.init_std", model.init_std, "0.02", "(0, 1]", "standard deviation of the normal weight init"),
    K_STRING("model.init_from", model.init_from, "", 0, "checkpoint to start from (\"\" = fresh random init)"),

    K_STRING("train.objective", train.objective, "sft", KF_NONEMPTY, "training objective: one loss name or a comma list of them, summed with train.loss_weights\n(\"dpo,sft\" with weights \"1,alpha\" is RPO). Names: sft, dpo, ipo, hinge, robust, cdpo, exo_pair,\nnca_pair, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm, simpo"),
    K_STRING("train.loss_weights", train.loss_weights, "", 0, "weights of the train.objective terms: \"\" = all 1, else a comma list of numbers >= 0, one per term"),
    K_STRING("train.data", train.data, "data/demo-sft.h5", KF_NONEMPTY, "training dataset (HDF5)"),
    K_STRING("train.out_dir", train.out_dir, "runs/demo", KF_NONEMPTY, "directory for checkpoints and the run log"),
    K_INT("train.steps", train.steps, "200", "[1, 1e9]", "optimizer steps"),
    K_INT("train.micro_batch", train.micro_batch, "16", "[1, 65536]", "sequences (sft) or pairs per rank per micro-step"),
    K_INT("train.grad_accum", train.grad_accum, "1", "[1, 65536]", "micro-steps per optimizer step"),
    K_FLOAT("train.lr", train.lr, "3e-3", "(0, 10]", "peak learning rate"),
    K_FLOAT("train.min_lr_frac", train.min_lr_frac, "0.1", "[0, 1]", "final learning rate = lr * min_lr_frac"),
    K_INT("train.warmup_steps", train.warmup_steps, "20", "[0, 1e9]", "linear warmup steps (may exceed steps)"),
    K_CHOICE("train.decay", train.decay, "cosine", "cosine|linear|constant", "learning-rate schedule after warmup"),
    K_FLOAT("train.weight_decay", train.weight_decay, "0.0", "[0, 10]", "AdamW decoupled weight decay"),
    K_BOOL("train.decay_embeddings", train.decay_embeddings, "false", "apply weight decay to the embeddings (wte, wpe) too"),
    K_FLOAT("train.beta1", train.beta1, "0.9", "[0, 1)", "AdamW first-moment decay"),
    K_FLOAT("train.beta2", train.beta2, "0.95", "[0, 1)", "AdamW second-moment decay"),
    K_FLOAT("train.adam_eps", train.adam_eps, "1e-8", "(0, 1]", "AdamW epsilon"),
    K_FLOAT("train.grad_clip", train.grad_clip, "1.0", "[0, inf)", "clip the global gradient norm to this (0 = off)"),
    K_INT64("train.seed", train.seed, "1234", "[0, inf)", "seed for the init and the data order"),
    K_INT("train.log_every", train.log_every, "10", "[1, 1e9]", "progress line every N steps"),
    K_INT("train.ckpt_every", train.ckpt_every, "0", "[0, 1e9]", "checkpoint every N steps (0 = only at the end)"),
    K_STRING("train.resume", train.resume, "", 0, "checkpoint to continue from: weights, optimizer state and step; \"auto\" = the newest valid checkpoint in out_dir, if any (damaged ones are skipped with a warning); \"\" = start fresh"),
    K_STRING("train.ref", train.ref, "", 0, "reference checkpoint of the preference losses (\"\" = model.init_from)"),
    K_STRING("train.ref_mix", train.ref_mix, "", 0, "second reference for a geometric-mixture reference (iterative alignment): log pi_ref = ref_alpha * log\npi_ref_mix + (1 - ref_alpha) * log pi_train.ref, exact for DPO/IPO since the normaliser cancels in a\npair (\"\" = none)"),
    K_FLOAT("train.ref_alpha", train.ref_alpha, "0.0", "[0, 1]", "weight of train.ref_mix in the geometric-mixture reference"),
    K_CHOICE("train.ref_cache", train.ref_cache, "auto", "auto|require|off", "reference log-probs cached in the dataset file under the reference's content hash: auto = use or compute and add, require = refuse to train without a matching cache, off = compute every run and store nothing"),
    K_INT("train.keep_ckpts", train.keep_ckpts, "3", "[0, 1e6]", "newest checkpoints kept in out_dir (0 = keep all)"),
    K_INT("train.check_every", train.check_every, "100", "[0, 1e9]", "every N steps, check that all ranks hold identical parameters (hash compared across ranks; 0 = never)"),
    K_INT("train.log_flush_every", train.log_flush_every, "10", "[1, 1e9]", "run log (out_dir/run.h5): rows buffered before they are written and flushed (a crash loses at most this many)"),
    K_BOOL("train.prefix_sharing", train.prefix_sharing, "true", "compute a pair's prompt once, with the chosen and rejected responses both attending to it"),

    K_FLOAT("loss.beta", loss.beta, "0.1", "(0, 1e6]", "beta: strength of the KL regularisation (IPO: tau, target margin 1/(2 beta))"),
    K_FLOAT("loss.label_smoothing", loss.label_smoothing, "0.0", "[0, 0.5)", "eps, the assumed share of flipped labels: cdpo, robust, exo_pair (0 means 1e-3 there), aot, aot_unpaired"),
    K_CHOICE("loss.ipo_normalize", loss.ipo_normalize, "sum", "sum|token_mean", "ipo: log-ratios from summed log-probs (the IPO paper's code) or per-token means (TRL)"),
    K_FLOAT("loss.simpo_gamma", loss.simpo_gamma, "0.5", "[0, 1e6]", "simpo: the target margin gamma itself, -log sigma(beta (logp_c/len_c - logp_r/len_r) - gamma)\n(TRL's CPO takes gamma_beta_ratio = gamma / beta instead)"),
    K_FLOAT("loss.discopop_tau", loss.discopop_tau, "0.05", "(0, 1e6]", "discopop: temperature of the mix between the logistic and exponential losses"),

    K_STRING("sample.checkpoint", sample.checkpoint, "demo-out/sft/latest.h5", KF_NONEMPTY, "checkpoint to sample from (its dimensions are used; model.* is ignored)"),
    K_STRING("sample.data", sample.data, "demo-out/train.h5", KF_NONEMPTY, "prefdata file (HDF5) whose prompts are used (its responses and pairs are ignored)"),
    K_STRING("sample.out", sample.out, "demo-out/samples.h5", KF_NONEMPTY, "output prefdata file: the prompts with sample.n responses each, no pairs;\nscored with the true reward when sample.data carries the synthetic task"),
    K_INT("sample.n", sample.n, "4", "[1, 1024]", "responses per prompt"),
    K_FLOAT("sample.temperature", sample.temperature, "1.0", "[0, 100]", "sampling temperature (0 = greedy)"),
    K_INT("sample.top_k", sample.top_k, "0", "[0, 16777216]", "keep only the top_k most likely tokens (0 = off)"),
    K_FLOAT("sample.top_p", sample.top_p, "1.0", "(0, 1]", "nucleus: keep the smallest set of most likely tokens with probability >= top_p (1 = off)"),
    K_INT("sample.max_len", sample.max_len, "16", "[1, 1048576]", "most tokens per response (end token included); also at most the checkpoint's context + 1 - prompt length"),
    K_INT("sample.eos", sample.eos, "0", "[-1, 16777215]", "token that ends a response, kept in it (-1 = none)"),
    K_INT64("sample.seed", sample.seed, "1", "[0, inf)", "seed: response k of prompt p draws from stream p * n + k (the same for every number of ranks and batch size)"),
    K_INT("sample.batch", sample.batch, "64", "[1, 65536]", "sequences per KV-cache step"),
    K_STRING("sample.tokenizer", sample.tokenizer, "", 0, "tokenizer directory (GPT-2 BPE): print sample.print decoded prompt + response pairs on rank 0 (\"\" = print none)"),
    K_INT("sample.print", sample.print, "3", "[0, 1000000]", "decoded samples printed when sample.tokenizer is set"),

    K_CHOICE("curriculum.select", curriculum.select, "none", "none|top|bottom|random|proportional", "PVar curriculum of preference training: which prompts each epoch trains on (none = all; top/bottom = highest/lowest PVar; random = the baseline; proportional = sampled with probability ~ PVar^(1/temperature))"),
    K_FLOAT("curriculum.frac", curriculum.frac, "0.1", "(0, 1]", "share of the prompts selected"),
    K_FLOAT("curriculum.temperature", curriculum.temperature, "1.0", "(0, 1e6]", "proportional selection: weights PVar^(1/temperature)"),
    K_INT("curriculum.every", curriculum.every, "1", "[0, 1e6]", "reselect every N epochs (an epoch = one pass over the selected prompts' pairs); 0 = once, before training.\nWith source = model and a policy that starts as its reference (model.init_from = train.ref), epoch 0's\nPVar is 0 (no pass is made; a random frac of the prompts), so the first selection by PVar is after one\nepoch of training (also with every = 0), and the next every N epochs from there"),
    K_FLOAT("curriculum.max_share", curriculum.max_share, "0.15", "(0, 1]", "model source: the largest share of the training time that selections may take. A selection forwards every\nresponse of every prompt while an epoch trains on the selected share only, so when reselecting every\n`every` epochs would cost more (predicted from model FLOPs, training = 3 x forward: the same on any machine,\nafter a resume and at any number of ranks with the same global batch), the curriculum reselects\nevery N > every epochs, the smallest N within the share, and says so; nor does it reselect for a tail\nof the run too short to pay for the selection. 1 = always every `every` epochs"),
    K_CHOICE("curriculum.source", curriculum.source, "model", "model|scores", "PVar from the current policy's implicit rewards log pi - log pi_ref (model) or from the responses' scores (scores: offline, e.g. a reward model or the true reward)"),
    K_FLOAT("curriculum.beta", curriculum.beta, "0", "[0, 1e6]", "model source: p = sigma(beta (h_i - h_j)); 0 = loss.beta"),
    K_FLOAT("curriculum.scale", curriculum.scale, "1.0", "(0, 1e6]", "scores source: p = sigma(scale (s_i - s_j))"),
    K_INT64("curriculum.seed", curriculum.seed, "1", "[0, inf)", "seed of random and proportional selection"),
    K_CHOICE("curriculum.log_pvar", curriculum.log_pvar, "all", "all|histogram", "what the run log keeps of each selection: every prompt's PVar and selected flag (all), or 50-bin histograms of PVar over [0, 1/4] for all and for the selected prompts plus the selected prompt ids (histogram: for datasets with millions of prompts)"),
    K_INT("curriculum.grad_norm_sample", curriculum.grad_norm_sample, "0", "[0, 1e7]", "at each selection, log the norm of the preference-loss gradient over each of this many sampled prompts' pairs (/curriculum/epoch_E/grad_norm), to plot against PVar"),
    K_STRING("iterate.out_dir", iterate.out_dir, "runs/iterate", KF_NONEMPTY, "directory of the rounds (round_T/: samples, pairs, training), policies and the run log iterate.h5"),
    K_STRING("iterate.init", iterate.init, "", 0, "initial policy pi_0, also the fixed part of the reference and of the sampler (\"\" = model.init_from)"),
    K_STRING("iterate.data", iterate.data, "demo-out/train.h5", KF_NONEMPTY, "prompts to sample responses to each round (a prefdata file of the synthetic task)"),
    K_INT("iterate.rounds", iterate.rounds, "4", "[1, 100000]", "rounds R: sample, label, train"),
    K_INT("iterate.k", iterate.k, "4", "[2, 64]", "responses sampled per prompt each round (all K(K-1)/2 pairs are labelled)"),
    K_FLOAT("iterate.lambda", iterate.lambda, "1.0", "[0, 1]", "sampler mu_t = lambda pi_t + (1 - lambda) pi_0: each response from the current policy with this probability"),
    K_FLOAT("iterate.alpha", iterate.alpha, "0.0", "[0, 1]", "reference log pi_ref_t = alpha log pi_t + (1 - alpha) log pi_0 (geometric mixture)"),
    K_INT("iterate.steps", iterate.steps, "100", "[1, 1e9]", "training steps per round (train.* sets the rest; train.steps is ignored)"),
    K_CHOICE("iterate.oracle", iterate.oracle, "bt", "bt|cyclic", "preference oracle: bt = Bradley-Terry on the task's true reward (synth.label_temp), cyclic = rock-paper-scissors\namong response classes (class = first response token mod iterate.classes; class c beats c+1 with\nprobability 1/2 + iterate.cyclic_a)"),
    K_FLOAT("iterate.cyclic_a", iterate.cyclic_a, "0.5", "[0, 0.5]", "advantage a of the cyclic oracle"),
    K_INT("iterate.classes", iterate.classes, "3", "[3, 64]", "response classes of the cyclic oracle"),
    K_INT64("iterate.seed", iterate.seed, "1", "[0, inf)", "seed of the sampler's mixture coins, the samples and the cyclic oracle's labels"),
    K_INT64("iterate.exact_max", iterate.exact_max, "4096", "[0, 1e7]", "on an enumerable synthetic task with at most this many responses per prompt, also record each policy's\nexact entropy, step ||pi_t - pi_{t-1}||_1 and class shares over every response (0 = never)"),

    K_INT("runtime.threads", runtime.threads, "0", "[0, 1024]", "threads per rank for BLAS and OpenMP (0 = auto)"),

    K_STRING("synth.out", synth.out, "demo-out/train.h5", KF_NONEMPTY, "training preference file (HDF5): synth.k teacher responses per prompt, true-reward scores, labelled pairs"),
    K_STRING("synth.sft_out", synth.sft_out, "demo-out/sft.h5", 0, "SFT demonstrations (HDF5): the same prompts, one teacher response each (\"\" = not written)"),
    K_STRING("synth.heldout_out", synth.heldout_out, "demo-out/heldout.h5", 0, "held-out preference file (HDF5): synth.n_heldout prompts of the held-out split, as synth.out (\"\" = not written)"),
    K_INT("synth.n_prompts", synth.n_prompts, "512", "[1, 1e8]", "training prompts (of the SFT and training preference files)"),
    K_INT("synth.n_heldout", synth.n_heldout, "256", "[1, 1e8]", "held-out prompts (a separate split of the same task)"),
    K_INT("synth.prompt_len", synth.prompt_len, "8", "[1, 1048576]", "prompt length in tokens"),
    K_INT("synth.response_len", synth.response_len, "16", "[1, 1048576]", "response length in tokens"),
    K_INT("synth.vocab_size", synth.vocab_size, "64", "[2, 16777216]", "tokens used by the task (at most model.vocab_size of the model trained on it)"),
    K_INT64("synth.seed", synth.seed, "7", "[0, inf)", "seed of the task (teacher, token weights, cares) and of every file synth writes"),
    K_INT("synth.k", synth.k, "4", "[2, 64]", "responses per prompt in the preference files, sampled from the teacher"),
    K_CHOICE("synth.pairs", synth.pairs, "all", "all|best_worst", "pairs per prompt: every pair of the K responses (K(K-1)/2), or the best against the worst by true reward\n(also used by `prefer label`)"),
    K_FLOAT("synth.label_temp", synth.label_temp, "1.0", "(0, inf)", "Bradley-Terry temperature: P(i preferred over j) = sigma((r_i - r_j) / label_temp)"),
    K_FLOAT("synth.label_noise", synth.label_noise, "0.0", "[0, 0.5]", "probability of flipping each Bradley-Terry label"),
    K_FLOAT("synth.reward_scale", synth.reward_scale, "1.0", "(0, inf)", "true reward r(x, y) = care(x) * sum of the response tokens' hidden weights (N(0,1));\nthe median care of the caring prompts"),
    K_FLOAT("synth.care_sigma", synth.care_sigma, "1.0", "[0, 10]", "spread of the cares: care = reward_scale * exp(care_sigma * N(0,1)), times care_indifferent_scale\nfor the near-indifferent prompts"),
    K_FLOAT("synth.care_indifferent", synth.care_indifferent, "0.2", "[0, 1]", "share of near-indifferent prompts (low preference variance)"),
    K_FLOAT("synth.care_indifferent_scale", synth.care_indifferent_scale, "0.02", "[0, 1]", "care of the near-indifferent prompts relative to the others"),
    K_CHOICE("synth.rejected_from", synth.rejected_from, "teacher", "teacher|reference|did|mix", "training pairs: teacher = synth.k teacher responses per prompt with Bradley-Terry labels; otherwise DID data\n(docs/did.md): synth.did_pairs pairs per prompt, the rejected response drawn exactly from the reference\n(reference), from the DID-optimal sampler pi_l ~ pi_ref^(1+beta) / pi*^beta (did), or from did with\nprobability synth.did_mix and else the reference (mix); pi* ~ pi_ref exp(r / loss.beta). Needs an\nenumerable task (synth.did_max_responses)"),
    K_CHOICE("synth.chosen_from", synth.chosen_from, "optimum", "optimum|reference|reference_best", "DID data: the chosen response drawn from pi* (optimum), from pi_ref (reference), or the best by true\nreward of synth.k draws from pi_ref (reference_best)"),
    K_FLOAT("synth.did_mix", synth.did_mix, "0.5", "[0, 1]", "DID data, rejected_from = mix: probability that a rejected response comes from the DID sampler"),
    K_STRING("synth.did_ref", synth.did_ref, "", 0, "DID data: the reference pi_ref as a checkpoint (the DPO run's reference, e.g. the SFT model); \"\" = the\nteacher's exact distribution"),
    K_INT("synth.did_pairs", synth.did_pairs, "8", "[1, 1000000]", "DID data: pairs per prompt"),
    K_INT64("synth.did_max_responses", synth.did_max_responses, "100000", "[1, 1e9]", "DID data: most responses per prompt the enumerable space may have ((vocab_size-1)^(response_len-1))"),

    K_STRING("label.in", label.in, "demo-out/samples.h5", KF_NONEMPTY, "prefdata file with several responses per prompt to label (e.g. from `prefer sample`);\nunscored files of the synthetic task are scored with the true reward"),
    K_STRING("label.out", label.out, "demo-out/prefs.h5", KF_NONEMPTY, "the labelled preference file: label.in with Bradley-Terry pairs (synth.pairs, synth.label_temp,\nsynth.label_noise)"),
    K_CHOICE("label.reward", label.reward, "score", "score|lexicon", "what the labels compare: score = /responses/score (or the synthetic task's true reward); lexicon = the\nsentiment score (AFINN, docs/sentiment.md) of each response decoded with label.tokenizer"),
    K_STRING("label.lexicon", label.lexicon, "", 0, "label.reward = lexicon: labels.json of the npm package sentiment, or its languages/en folder (with negators.json)"),
    K_STRING("label.tokenizer", label.tokenizer, "", 0, "label.reward = lexicon: tokenizer directory used to decode the responses"),

    K_STRING("eval.policy", eval.policy, "demo-out/dpo/latest.h5", KF_NONEMPTY, "checkpoint to evaluate"),
    K_STRING("eval.ref", eval.ref, "demo-out/sft/latest.h5", KF_NONEMPTY, "reference checkpoint (the KL and the win rate are against it)"),
    K_STRING("eval.data", eval.data, "demo-out/heldout.h5", KF_NONEMPTY, "held-out prompts and pairs (HDF5); the true reward needs a file of the synthetic task"),
    K_INT("eval.n_samples", eval.n_samples, "4", "[1, 1024]", "responses sampled per prompt from the policy and from the reference"),
    K_FLOAT("eval.temperature", eval.temperature, "1.0", "(0, 100]", "sampling temperature of both models (1 = their own distributions, which the KL is about)"),
    K_INT("eval.max_len", eval.max_len, "16", "[1, 1048576]", "most tokens per sampled response (end token 0 included)"),
    K_INT64("eval.seed", eval.seed, "2024", "[0, inf)", "seed of the samples (the same for every number of ranks)"),
    K_INT("eval.batch", eval.batch, "64", "[1, 65536]", "sequences per forward pass"),
    K_STRING("eval.out", eval.out, "", 0, "results file (HDF5, format prefer.eval: every number printed, the policy's config, the exact frontier); \"\" = none"),
    K_BOOL("eval.log", eval.log, "true", "append the results as a row of the \"eval\" table of the policy's run log (run.h5 in the checkpoint's directory), when there is one; run eval after that training has finished"),
    K_INT("eval.frontier_points", eval.frontier_points, "16", "[0, 1000]", "points of the exact optimum's reward/KL curve written to eval.out (synthetic task)"),
    K_CHOICE("eval.reward", eval.reward, "true", "true|lexicon", "reward of the samples: true = the synthetic task's; lexicon = the sentiment score (AFINN) of each response\ndecoded with eval.tokenizer (docs/sentiment.md)"),
    K_STRING("eval.lexicon", eval.lexicon, "", 0, "eval.reward = lexicon: labels.json of the npm package sentiment, or its languages/en folder"),
    K_STRING("eval.tokenizer", eval.tokenizer, "", 0, "eval.reward = lexicon: tokenizer directory used to decode the responses"),
    K_INT("eval.eos", eval.eos, "0", "[-1, 16777215]", "token that ends a sampled response (0 = the synthetic task's; 50256 = GPT-2's <|endoftext|>; -1 = none)"),

    K_STRING("pvar.data", pvar.data, "demo-out/prefs.h5", KF_NONEMPTY, "prefdata file (HDF5) whose prompts get a preference variance (PVar); prompts need >= 2 responses"),
    K_CHOICE("pvar.source", pvar.source, "scores", "model|scores", "what the PVar is computed from: model = implicit rewards log pi(y) - log pi_ref(y) of pvar.policy\nand pvar.ref, p_ij = sigma(beta (h_i - h_j)); scores = /responses/score, p_ij = sigma(scale (s_i - s_j))\n(unscored files of the synthetic task use the true reward)"),
    K_STRING("pvar.policy", pvar.policy, "demo-out/sft/latest.h5", KF_NONEMPTY, "policy checkpoint (source = model). A policy equal to its reference has h = 0 and PVar 0\neverywhere: give a trained policy (e.g. demo-out/dpo/latest.h5) for a useful ranking"),
    K_STRING("pvar.ref", pvar.ref, "demo-out/sft/latest.h5", KF_NONEMPTY, "reference checkpoint (source = model)"),
    K_FLOAT("pvar.beta", pvar.beta, "0.1", "(0, 1e6]", "source = model: p_ij = sigma(beta (h_i - h_j)), h = log pi(y) - log pi_ref(y) (the DPO beta)"),
    K_FLOAT("pvar.scale", pvar.scale, "1.0", "(0, 1e6]", "source = scores: p_ij = sigma(scale (s_i - s_j))"),
    K_INT("pvar.batch", pvar.batch, "64", "[1, 65536]", "sequences per forward pass (source = model): each is a prompt with its responses, the prompt forwarded once"),
    K_STRING("pvar.out", pvar.out, "demo-out/pvar.h5", KF_NONEMPTY, "results file (HDF5, format prefer.pvar): /pvar float64[P] (NaN: < 2 responses), /rank int64[P]\n(0 = highest PVar, -1 = no PVar), /selected uint8[P]"),
    K_CHOICE("pvar.select", pvar.select, "none", "none|top|bottom|random|proportional", "which prompts to select: the top or bottom pvar.frac by PVar (ties to the lower index), a uniformly\nrandom pvar.frac, or pvar.frac sampled without replacement with probability ~ PVar^(1/temperature);\nprompts without a PVar are never selected"),
    K_FLOAT("pvar.frac", pvar.frac, "0.1", "(0, 1]", "share of the prompts with a PVar that is selected: ceil(frac * n)"),
    K_FLOAT("pvar.temperature", pvar.temperature, "1.0", "(0, 1e6]", "select = proportional: weights PVar^(1/temperature) (-> 0: top; large: random)"),
    K_INT64("pvar.seed", pvar.seed, "1", "[0, inf)", "seed of the random and proportional selections (the same set for any number of ranks)"),
    K_STRING("pvar.select_out", pvar.select_out, "", 0, "prefdata file of the selected prompts with all their responses, scores and pairs, renumbered;\n/source_prompt int64[P'] gives each one's index in pvar.data (\"\" = not written)"),

    K_STRING("import.input", import.input, "data/prefs.jsonl", KF_NONEMPTY, "JSONL file of `prefer import`: one JSON object per line (docs/import.md)"),
    K_STRING("import.output", import.output, "data/prefs.h5", KF_NONEMPTY, "prefdata file written (HDF5): the prompts, responses (with scores), pairs and the tokenizer's identity"),
    K_STRING("import.tokenizer", import.tokenizer, "", 0, "tokenizer directory: vocab.json + merges.txt, encoder.json + vocab.bpe, or tokenizer.json (GPT-2 BPE;\nscripts/fetch-gpt2-tokenizer.sh fetches GPT-2's); must be set"),
    K_CHOICE("import.format", import.format, "auto", "auto|explicit|implicit|conversational|scored", "layout of the lines: explicit {prompt, chosen, rejected}; implicit {chosen, rejected} sharing the prompt\n(HH-RLHF); conversational lists of {role, content} messages ({messages} or {chosen, rejected[, prompt]});\nscored {prompt, completions: [{text, score}]} (UltraFeedback); auto = from the first line with known keys"),
    K_CHOICE("import.pairs", import.pairs, "all", "all|best_worst", "scored: pairs per prompt, every two responses with different scores (chosen = higher), or the best\nagainst the worst; equal scores make no pair (counted)"),
    K_STRING("import.score_key", import.score_key, "auto", KF_NONEMPTY, "scored: the completions' score field (auto = score, else fine-grained_score, else overall_score)"),
    K_INT("import.max_prompt_tokens", import.max_prompt_tokens, "0", "[0, 1e9]", "keep the last N tokens of a longer prompt (0 = no limit)"),
    K_INT("import.max_response_tokens", import.max_response_tokens, "0", "[0, 1e9]", "keep the first N tokens of a longer response, end token included (a cut response has none; 0 = no limit)"),
    K_INT("import.max_total_tokens", import.max_total_tokens, "0", "[0, 1e9]", "after the cuts, drop a response whose prompt + response is longer (a pair loses both responses and its\nprompt); set it to model.context so that every sequence fits (0 = no limit)"),
    K_BOOL("import.append_eot", import.append_eot, "true", "end every response with the tokenizer's <|endoftext|>"),
    K_BOOL("import.skip_malformed", import.skip_malformed, "false", "skip and count malformed lines instead of stopping at the first with its line number"),
    K_STRING("import.template_system", import.template_system, "{content}", KF_NONEMPTY, "chat template of a system message ({content} = its text, exactly once)"),
    K_STRING("import.template_user", import.template_user, "\n\nHuman: {content}", KF_NONEMPTY, "chat template of a user message"),
    K_STRING("import.template_assistant", import.template_assistant, "\n\nAssistant: {content}", KF_NONEMPTY, "chat template of an assistant message; must begin with import.template_generation_prompt"),
    K_STRING("import.template_generation_prompt", import.template_generation_prompt, "\n\nAssistant:", 0, "appended to a rendered prompt (the opening of the assistant's turn), and where an implicit prompt\nends: after its last occurrence in the text chosen and rejected share"),

    K_STRING("exact.policy", exact.policy, "demo-out/dpo/latest.h5", KF_NONEMPTY, "checkpoint whose exact response distributions `prefer exact` computes"),
    K_STRING("exact.ref", exact.ref, "demo-out/sft/latest.h5", KF_NONEMPTY, "reference checkpoint pi_ref (of the KLs, the DID pi / pi_ref and the optimum pi*)"),
    K_STRING("exact.data", exact.data, "demo-out/heldout.h5", KF_NONEMPTY, "prefdata file of the synthetic task (prefer synth): its prompts, and its pairs for the chosen and\nrejected log-likelihoods"),
    K_FLOAT("exact.beta", exact.beta, "0", "[0, 1e6]", "the optimum pi* ~ pi_ref exp(r / beta) for the task's true reward r; 0 = loss.beta"),
    K_STRING("exact.out", exact.out, "demo-out/exact.h5", KF_NONEMPTY, "results file (HDF5, format prefer.exact): per prompt masses, entropies, KLs, DID entropy, expected\nrewards, chosen/rejected log-likelihoods, and their means"),
    K_STRING("exact.runlog", exact.runlog, "", 0, "run log (run.h5) to append the means to as a row of its \"exact\" table (\"\" = none)"),
    K_INT64("exact.max_responses", exact.max_responses, "100000", "[1, 1e9]", "enumerable mode: most responses per prompt, (synth.vocab_size - 1)^(synth.response_len - 1);\na larger task is refused"),
    K_INT("exact.n_prompts", exact.n_prompts, "0", "[0, 1e8]", "the first N prompts of exact.data (0 = all)"),
    K_BOOL("exact.save_distributions", exact.save_distributions, "false", "also store every prompt's log-probs over the whole space (policy, reference, reward: 3 x 8 bytes\nx prompts x responses) in exact.out"),

    K_CHOICE("dynamics.family", dynamics.family, "cyclic", "cyclic|transitive|file", "preference matrix P of `prefer dynamics`: cyclic (rock-paper-scissors, P = 11^T/2 + a C with C[i][i+1] = 1,\nC[i+1][i] = -1 mod n), transitive (Bradley-Terry, P_ij = sigma(r_i - r_j)) or read from dynamics.p_file"),
    K_INT("dynamics.n", dynamics.n, "3", "[2, 1024]", "classes (responses) of the cyclic (n >= 3) and transitive families; a file gives its own"),
    K_FLOAT("dynamics.advantage", dynamics.advantage, "0.5", "[0, 0.5]", "cyclic: advantage a, Pr(class i beats class i+1 mod n) = 1/2 + a (n = 3: the paper's boundary\nalpha^2 + a^2 beta^2 lambda^2 / 3 = 1)"),
    K_STRING("dynamics.rewards", dynamics.rewards, "", 0, "transitive: comma list of the n class rewards r_i (\"\" = r_i = reward_gap * (n - 1 - i): class 0 best)"),
    K_FLOAT("dynamics.reward_gap", dynamics.reward_gap, "1.0", "(0, 1e6]", "transitive with rewards = \"\": reward difference of neighbouring classes"),
    K_STRING("dynamics.p_file", dynamics.p_file, "", 0, "family = file: HDF5 file with a float dataset /P (n, n), or a text file of n lines of n numbers\n('#' comments); P + P^T = 1 off the diagonal, 1/2 on it"),
    K_STRING("dynamics.pi0", dynamics.pi0, "", 0, "initial policy pi_0 (the sampler's fixed share): comma list of n positive weights, normalised\n(\"\" = uniform)"),
    K_STRING("dynamics.pi_ref", dynamics.pi_ref, "", 0, "base reference pi_ref of the geometric mixture pi_t^alpha pi_ref^(1-alpha): comma list of n positive\nweights (\"\" = pi_0)"),
    K_FLOAT("dynamics.perturb", dynamics.perturb, "0.1", "[-100, 100]", "the iteration starts from pi_0 with this added to class 0's log-probability (a fixed point such as\nthe uniform policy of the cyclic family never moves without it)"),
    K_STRING("dynamics.alpha", dynamics.alpha, "0,0.2,0.4,0.6,0.8,0.95", KF_NONEMPTY, "grid of alpha in [0, 1]: comma list of numbers and lo:hi:count ranges (count points, ends included)"),
    K_STRING("dynamics.beta", dynamics.beta, "1:6:6", KF_NONEMPTY, "grid of beta >= 0, as dynamics.alpha"),
    K_STRING("dynamics.lambda", dynamics.lambda, "1", KF_NONEMPTY, "grid of lambda in [0, 1], as dynamics.alpha"),
    K_INT("dynamics.rounds", dynamics.rounds, "3000", "[1, 1e8]", "rounds R per grid point"),
    K_INT("dynamics.window", dynamics.window, "300", "[1, 1e8]", "the last W rounds (W <= R) judged: convergence, cycle strength"),
    K_FLOAT("dynamics.tol", dynamics.tol, "1e-8", "(0, 2]", "converged: every step ||pi_{t+1} - pi_t||_1 in the window is below tol"),
    K_FLOAT("dynamics.cycle_tol", dynamics.cycle_tol, "1e-4", "[0, 1]", "oscillating: not converged and cycle strength (mean over classes of the variance of pi_t(i)\nover the window) above this"),
    K_FLOAT("dynamics.collapse_entropy", dynamics.collapse_entropy, "0.01", "[0, 100]", "collapsed: final entropy (nats) below this, without oscillation"),
    K_STRING("dynamics.trajectories", dynamics.trajectories, "", 0, "points \"alpha,beta,lambda; ...\" whose every policy pi_0 .. pi_R is saved (/trajectories/<k>/pi)"),
    K_STRING("dynamics.out", dynamics.out, "demo-out/dynamics.h5", KF_NONEMPTY, "results file (HDF5, format prefer.dynamics): P, the grid and per point entropy, cycle strength,\nconvergence, contraction constant, theoretical regime and outcome"),
};

#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))
#define ORIGIN_LEN 200

/* A value on its way into the struct. s is borrowed; own (if set) is freed by the caller. */
typedef struct {
    long long i; /* KT_INT, KT_INT64, KT_BOOL */
    double f;    /* KT_FLOAT */
    const char *s;
    char *own;
} Value;

typedef struct {
    char *buf;
    int len;
} Err;

typedef struct {
    char *p;
    size_t len, cap;
} StrBuf;

/* ---------------------------------------------------------------- small helpers */

PREFER_PRINTF(2, 3) static int fail(Err *e, const char *fmt, ...)
{
    if (e->buf && e->len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->buf, (size_t)e->len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

PREFER_PRINTF(2, 3) static void sb_printf(StrBuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("config: cannot format text");
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + (size_t)n + 1 > cap)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void *field_ptr(PreferConfig *c, const KeySpec *k) { return (char *)c + k->off; }
static const void *field_cptr(const PreferConfig *c, const KeySpec *k)
{
    return (const char *)c + k->off;
}

static int is_string_key(const KeySpec *k) { return k->type == KT_STRING || k->type == KT_CHOICE; }

static size_t section_len(const char *key)
{
    const char *dot = strchr(key, '.');
    return dot ? (size_t)(dot - key) : strlen(key);
}

static const char *leaf_name(const char *key)
{
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

static const KeySpec *find_key(const char *key)
{
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].key, key))
            return &KEYS[i];
    return NULL;
}

static int section_known(const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < NKEYS; i++)
        if (section_len(KEYS[i].key) == n && !strncmp(KEYS[i].key, name, n))
            return 1;
    return 0;
}

/* Optimal string alignment distance (a swap of neighbours counts 1); 99 for long strings. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* A typo is close when within 2 edits, and fewer edits than the candidate's name is long
 * (so "x" does not suggest "lr"). */
static int is_close(const char *typo, const char *cand, size_t cand_len)
{
    int dist = edit_distance(typo, cand);
    return dist <= 2 && (size_t)dist < cand_len;
}

/* " (did you mean 'train.lr'?)" for an unknown key, or "". A key whose name exists in another
 * section ("train.vocab_size") suggests that one. */
static void hint_key(const char *key, char *out, size_t n)
{
    const char *best = NULL;
    int best_d = 99;
    for (int i = 0; i < NKEYS; i++) {
        int dist = edit_distance(key, KEYS[i].key);
        if (dist < best_d && is_close(key, KEYS[i].key, strlen(leaf_name(KEYS[i].key)))) {
            best = KEYS[i].key;
            best_d = dist;
        }
    }
    for (int i = 0; !best && i < NKEYS; i++)
        if (!strcmp(leaf_name(key), leaf_name(KEYS[i].key)))
            best = KEYS[i].key;
    snprintf(out, n, best ? " (did you mean '%s'?)" : "%s", best ? best : "");
}

static void hint_section(const char *name, char *out, size_t n)
{
    char best[64] = "";
    int best_d = 99;
    for (int i = 0; i < NKEYS; i++) {
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", (int)section_len(KEYS[i].key), KEYS[i].key);
        int dist = edit_distance(name, sec);
        if (dist < best_d && is_close(name, sec, strlen(sec))) {
            snprintf(best, sizeof best, "%s", sec);
            best_d = dist;
        }
    }
    snprintf(out, n, *best ? " (did you mean '%s'?)" : "%s", best);
}

/* 1 if s is one of the '|'-separated choices; else a hint for the closest into hint. */
static int choice_ok(const char *choices, const char *s, char *hint, size_t n)
{
    const char *p = choices;
    char best[64] = "";
    int best_d = 99;
    while (*p) {
        size_t len = strcspn(p, "|");
        if (strlen(s) == len && !strncmp(p, s, len))
            return 1;
        char c[64];
        snprintf(c, sizeof c, "%.*s", (int)len, p);
        int dist = edit_distance(s, c);
        if (dist < best_d && is_close(s, c, strlen(c))) {
            snprintf(best, sizeof best, "%s", c);
            best_d = dist;
        }
        p += len + (p[len] == '|');
    }
    snprintf(hint, n, *best ? " (did you mean '%s'?)" : "%s", best);
    return 0;
}

static int parse_range(const char *r, double *lo, double *hi, int *lo_open, int *hi_open)
{
    char lb = 0, rb = 0;
    if (!r || sscanf(r, " %c %lf , %lf %c", &lb, lo, hi, &rb) != 4)
        return -1;
    if ((lb != '[' && lb != '(') || (rb != ']' && rb != ')') || !(*lo <= *hi))
        return -1;
    *lo_open = lb == '(';
    *hi_open = rb == ')';
    return 0;
}

/* Shortest text that reads back to exactly v, always with a '.' or exponent so libconfig
 * takes it as a float. */
static void format_double(double v, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (strchr(buf, 'e') && fabs(v) < 1e17 && v == (double)(long long)v)
        snprintf(buf, n, "%.0f", v); /* 1000.0, not 1e+03 */
    if (!strpbrk(buf, ".eEni")) /* n, i: nan, inf (never valid here, but stay readable) */
        strncat(buf, ".0", n - strlen(buf) - 1);
}

static void format_string(StrBuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_printf(b, "\\\""); break;
        case '\\': sb_printf(b, "\\\\"); break;
        case '\n': sb_printf(b, "\\n"); break;
        case '\t': sb_printf(b, "\\t"); break;
        case '\r': sb_printf(b, "\\r"); break;
        case '\f': sb_printf(b, "\\f"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                sb_printf(b, "\\x%02x", *p);
            else
                sb_printf(b, "%c", *p);
        }
    }
    sb_printf(b, "\"");
}

/* The value in libconfig syntax. */
static void format_value(StrBuf *b, const KeySpec *k, const Value *v)
{
    char num[64];
    switch (k->type) {
    case KT_INT:
        sb_printf(b, "%lld", v->i);
        break;
    case KT_INT64: /* libconfig 1.5 wraps integers beyond 32 bits unless they carry an L */
        sb_printf(b, "%lld%s", v->i, v->i < INT_MIN || v->i > INT_MAX ? "L" : "");
        break;
    case KT_FLOAT:
        format_double(v->f, num, sizeof num);
        sb_printf(b, "%s", num);
        break;
    case KT_BOOL:
        sb_printf(b, "%s", v->i ? "true" : "false");
        break;
    case KT_STRING:
    case KT_CHOICE:
        format_string(b, v->s);
        break;
    }
}

static Value get_field(const PreferConfig *c, const KeySpec *k)
{
    Value v = {0};
    const void *p = field_cptr(c, k);
    switch (k->type) {
    case KT_INT:
    case KT_BOOL: v.i = *(const int *)p; break;
    case KT_INT64: v.i = *(const int64_t *)p; break;
    case KT_FLOAT: v.f = *(const double *)p; break;
    case KT_STRING:
    case KT_CHOICE: v.s = *(char *const *)p ? *(char *const *)p : ""; break;
    }
    return v;
}

/* ---------------------------------------------------------------- validate and store */

/* Check v against the key's range / choices and store it. `where` prefixes messages:
 * "file:line: train.lr = 20.0" or "--set train.lr=20". */
static int store(PreferConfig *c, const KeySpec *k, const Value *v, const char *where, Err *e)
{
    void *p = field_ptr(c, k);
    if (k->type == KT_INT || k->type == KT_INT64 || k->type == KT_FLOAT) {
        double lo, hi, x = k->type == KT_FLOAT ? v->f : (double)v->i;
        int lo_open, hi_open;
        if (parse_range(k->range, &lo, &hi, &lo_open, &hi_open) != 0)
            die("config: bad range \"%s\" for %s", k->range ? k->range : "(null)", k->key);
        /* written so that NaN fails */
        int ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
        if (!ok)
            return fail(e, "%s: out of range %s", where, k->range);
    }
    switch (k->type) {
    case KT_INT: *(int *)p = (int)v->i; break; /* ranges of int keys lie inside int */
    case KT_INT64: *(int64_t *)p = v->i; break;
    case KT_FLOAT: *(double *)p = v->f; break;
    case KT_BOOL: *(int *)p = v->i != 0; break;
    case KT_STRING:
    case KT_CHOICE: {
        char hint[96];
        if ((k->flags & KF_NONEMPTY) && !*v->s)
            return fail(e, "%s: must not be empty", where);
        if (k->type == KT_CHOICE && !choice_ok(k->choices, v->s, hint, sizeof hint))
            return fail(e, "%s: not one of %s%s", where, k->choices, hint);
        char **sp = p;
        free(*sp);
        *sp = xstrdup(v->s);
        break;
    }
    }
    return 0;
}

/* Parse --set / default text by the key's type. NULL on success, else what was expected.
 * Strings may be wrapped in double quotes, which are dropped; v->own must be freed. */
static const char *parse_text(const KeySpec *k, const char *s, Value *v)
{
    char *end;
    memset(v, 0, sizeof *v);
    switch (k->type) {
    case KT_INT:
    case KT_INT64:
        if (!(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
            return "expected an integer";
        errno = 0;
        v->i = strtoll(s, &end, 10);
        if (end == s || *end)
            return "expected an integer";
        if (errno == ERANGE)
            return "expected an integer that fits in 64 bits";
        return NULL;
    case KT_FLOAT:
        v->f = strtod(s, &end);
        if (end == s || *end)
            return "expected a number";
        if (!isfinite(v->f))
            return "expected a finite number";
        return NULL;
    case KT_BOOL:
        if (!strcasecmp(s, "true") || !strcmp(s, "1"))
            v->i = 1;
        else if (!strcasecmp(s, "false") || !strcmp(s, "0"))
            v->i = 0;
        else
            return "expected true or false (or 1 or 0)";
        return NULL;
    case KT_STRING:
    case KT_CHOICE: {
        size_t n = strlen(s);
        if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
            v->own = strndup(s + 1, n - 2);
        else
            v->own = strdup(s);
        if (!v->own)
            die("out of memory copying a config value");
        v->s = v->own;
        return NULL;
    }
    }
    return "unknown key type";
}

static const char *got_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    default: return "nothing";
    }
}

static const char *expected_name(KeyType t)
{
    switch (t) {
    case KT_INT:
    case KT_INT64: return "an integer";
    case KT_FLOAT: return "a number";
    case KT_BOOL: return "a boolean (true or false)";
    case KT_STRING:
    case KT_CHOICE: return "a string";
    }
    return "?";
}

/* The setting's value if its libconfig type suits the key (an integer is fine for a float). */
static int read_setting(const KeySpec *k, const config_setting_t *s, Value *v)
{
    int t = config_setting_type(s);
    memset(v, 0, sizeof *v);
    switch (k->type) {
    case KT_INT:
    case KT_INT64:
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return -1;
        v->i = config_setting_get_int64(s);
        return 0;
    case KT_FLOAT:
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64 && t != CONFIG_TYPE_FLOAT)
            return -1;
        v->f = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                      : (double)config_setting_get_int64(s);
        return 0;
    case KT_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return -1;
        v->i = config_setting_get_bool(s);
        return 0;
    case KT_STRING:
    case KT_CHOICE:
        if (t != CONFIG_TYPE_STRING)
            return -1;
        v->s = config_setting_get_string(s);
        return 0;
    }
    return -1;
}

/* libconfig 1.5 reads an integer literal beyond 32 bits without an L suffix as a silently
 * wrapped int (5000000000 -> 705032704). Find the literal on the setting's source line and
 * compare. 0 if it matches (or cannot be found), -1 if it was wrapped; *lit gets the text. */
static int int_literal_wrapped(const char *file, unsigned line, const char *name, int ival,
                               char *lit, size_t litn)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got = 0;
    for (unsigned i = 0; i < line && (got = getline(&buf, &cap, f)) >= 0; i++)
        ;
    fclose(f);
    int found = 0, match = 0;
    size_t nlen = strlen(name);
    for (const char *p = got >= 0 && buf ? strstr(buf, name) : NULL; p; p = strstr(p + 1, name)) {
        if (p > buf && (p[-1] == '_' || p[-1] == '-' || p[-1] == '*' || isalnum((unsigned char)p[-1])))
            continue;
        const char *q = p + nlen;
        q += strspn(q, " \t");
        if (*q != '=' && *q != ':')
            continue;
        q++;
        q += strspn(q, " \t");
        const char *t = q + (*q == '-' || *q == '+');
        int hex = t[0] == '0' && (t[1] == 'x' || t[1] == 'X');
        size_t len = (size_t)(t - q) + (hex ? 2 + strspn(t + 2, "0123456789abcdefABCDEF")
                                            : strspn(t, "0123456789"));
        if (len == (size_t)(t - q) + (hex ? 2 : 0) || q[len] == 'L' || q[len] == 'l')
            continue;
        char tok[64];
        snprintf(tok, sizeof tok, "%.*s", (int)len, q);
        errno = 0;
        long long x = strtoll(tok, NULL, hex ? 16 : 10);
        found = 1;
        if (errno != ERANGE && x == (long long)ival)
            match = 1;
        else
            snprintf(lit, litn, "%s", tok);
    }
    free(buf);
    return found && !match ? -1 : 0;
}

/* ---------------------------------------------------------------- loading */

typedef char Origin[ORIGIN_LEN]; /* where each key was last set; "" = default */

static const char *setting_file(const config_setting_t *s, const char *path)
{
    const char *f = config_setting_source_file(s);
    return f ? f : path;
}

static int load_setting(PreferConfig *c, const char *path, const char *section,
                        const config_setting_t *s, Origin *org, Err *e)
{
    const char *file = setting_file(s, path);
    unsigned line = config_setting_source_line(s);
    char *key = xasprintf("%s.%s", section, config_setting_name(s));
    const KeySpec *k = find_key(key);
    int rc = 0;
    Value v;
    char lit[64];
    if (!k) {
        char hint[96];
        hint_key(key, hint, sizeof hint);
        rc = fail(e, "%s:%u: unknown key '%s'%s", file, line, key, hint);
    } else if (read_setting(k, s, &v) != 0) {
        rc = fail(e, "%s:%u: %s: expected %s, got %s", file, line, key, expected_name(k->type),
                  got_name(config_setting_type(s)));
    } else if (config_setting_type(s) == CONFIG_TYPE_INT &&
               int_literal_wrapped(file, line, config_setting_name(s), config_setting_get_int(s),
                                   lit, sizeof lit)) {
        rc = fail(e, "%s:%u: %s: %s does not fit in 32 bits (libconfig needs an L suffix: %sL)",
                  file, line, key, lit, lit);
    } else {
        StrBuf where = {0};
        sb_printf(&where, "%s:%u: %s = ", file, line, key);
        format_value(&where, k, &v);
        rc = store(c, k, &v, where.p, e);
        free(where.p);
        snprintf(org[k - KEYS], ORIGIN_LEN, "%s:%u", file, line);
    }
    free(key);
    return rc;
}

/* Our keys are two levels deep, so walking sections and their members reaches every setting:
 * anything deeper sits under an unknown key or under a known key used as a group. */
static int load_file(PreferConfig *c, const char *path, Origin *org, Err *e)
{
    struct stat st;
    if (!*path)
        return fail(e, "config file name is empty");
    if (stat(path, &st) != 0)
        return fail(e, "%s: cannot open (%s)", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return fail(e, "%s: cannot open (it is a directory)", path);
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(e, "%s: cannot open (%s)", path, strerror(errno));
    fclose(f);

    config_t lc;
    config_init(&lc);
    int rc = 0;
    if (!config_read_file(&lc, path)) {
        const char *ef = config_error_file(&lc) ? config_error_file(&lc) : path;
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            rc = fail(e, "%s: cannot read (%s)", ef, config_error_text(&lc));
        else
            rc = fail(e, "%s:%d: %s", ef, config_error_line(&lc), config_error_text(&lc));
        config_destroy(&lc);
        return rc;
    }
    const config_setting_t *root = config_root_setting(&lc);
    for (int i = 0; rc == 0 && i < config_setting_length(root); i++) {
        const config_setting_t *sec = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(sec);
        const char *file = setting_file(sec, path);
        unsigned line = config_setting_source_line(sec);
        if (!section_known(name)) {
            char hint[96];
            hint_section(name, hint, sizeof hint);
            rc = fail(e, "%s:%u: unknown section '%s'%s", file, line, name, hint);
        } else if (!config_setting_is_group(sec)) {
            rc = fail(e, "%s:%u: '%s' must be a group (%s: { ... };), got %s", file, line, name,
                      name, got_name(config_setting_type(sec)));
        } else {
            for (int j = 0; rc == 0 && j < config_setting_length(sec); j++)
                rc = load_setting(c, path, name, config_setting_get_elem(sec, (unsigned)j), org, e);
        }
    }
    config_destroy(&lc);
    return rc;
}

static int apply_set(PreferConfig *c, const char *arg, Origin *org, Err *e)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return fail(e, "--set %s: expected section.key=value", arg);
    char *key = strndup(arg, (size_t)(eq - arg));
    if (!key)
        die("out of memory copying a --set argument");
    const KeySpec *k = find_key(key);
    int rc;
    Value v;
    const char *why;
    if (!k) {
        char hint[96];
        hint_key(key, hint, sizeof hint);
        rc = fail(e, "--set %s: unknown key '%s'%s", arg, key, hint);
    } else if ((why = parse_text(k, eq + 1, &v)) != NULL) {
        rc = fail(e, "--set %s: %s", arg, why);
    } else {
        char *where = xasprintf("--set %s", arg);
        rc = store(c, k, &v, where, e);
        free(where);
        free(v.own);
        snprintf(org[k - KEYS], ORIGIN_LEN, "--set %s", arg);
    }
    free(key);
    return rc;
}

static const char *origin_of(Origin *org, const char *key)
{
    const KeySpec *k = find_key(key);
    return k && org[k - KEYS][0] ? org[k - KEYS] : "default";
}

/* Rules across keys that hold for every command. */
static int check_cross(const PreferConfig *c, const char *path, Origin *org, Err *e)
{
    const char *where = path ? path : "config";
    if (c->model.n_embd % c->model.n_head != 0)
        return fail(e, "%s: model.n_embd = %d (%s) must be a multiple of model.n_head = %d (%s)",
                    where, c->model.n_embd, origin_of(org, "model.n_embd"), c->model.n_head,
                    origin_of(org, "model.n_head"));
    if (c->dynamics.window > c->dynamics.rounds)
        return fail(e, "%s: dynamics.window = %d (%s) must not exceed dynamics.rounds = %d (%s)", where,
                    c->dynamics.window, origin_of(org, "dynamics.window"), c->dynamics.rounds,
                    origin_of(org, "dynamics.rounds"));
    /* the objective is a free string: losses.c knows the names and the weights' shape */
    LossSpec ls;
    char why[512];
    if (loss_spec_parse(&ls, c, why, sizeof why) != 0)
        return fail(e, "%s: %s (train.objective: %s; train.loss_weights: %s)", where, why,
                    origin_of(org, "train.objective"), origin_of(org, "train.loss_weights"));
    return 0;
}

/* Catch a malformed table line the first time any config function runs. */
static void table_check(void)
{
    static int done = 0;
    if (done)
        return;
    for (int i = 0; i < NKEYS; i++) {
        const KeySpec *k = &KEYS[i];
        const char *dot = strchr(k->key, '.');
        if (!dot || dot == k->key || !dot[1] || strchr(dot + 1, '.') || !k->def || !k->help)
            die("config table: bad key '%s' (want section.name, a default and help)", k->key);
        size_t sl = section_len(k->key);
        int starts = i == 0 || section_len(KEYS[i - 1].key) != sl || strncmp(KEYS[i - 1].key, k->key, sl);
        for (int j = 0; j < i; j++) {
            if (!strcmp(KEYS[j].key, k->key))
                die("config table: key '%s' appears twice", k->key);
            if (starts && section_len(KEYS[j].key) == sl && !strncmp(KEYS[j].key, k->key, sl))
                die("config table: keys of section '%.*s' are not adjacent", (int)sl, k->key);
        }
        if (k->type == KT_INT || k->type == KT_INT64 || k->type == KT_FLOAT) {
            double lo, hi;
            int lo_open, hi_open;
            if (parse_range(k->range, &lo, &hi, &lo_open, &hi_open) != 0)
                die("config table: bad range \"%s\" for %s", k->range ? k->range : "", k->key);
            if (k->type == KT_INT && !(lo >= INT_MIN && hi <= INT_MAX))
                die("config table: range of int key %s must lie inside int", k->key);
        }
        if (k->type == KT_CHOICE && (!k->choices || !*k->choices))
            die("config table: %s has no choices", k->key);
    }
    done = 1;
}

/* ---------------------------------------------------------------- public */

void config_defaults(PreferConfig *cfg)
{
    table_check();
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < NKEYS; i++) {
        char err[256];
        Err e = {err, sizeof err};
        Value v;
        const char *why = parse_text(&KEYS[i], KEYS[i].def, &v);
        if (why)
            die("config table: default \"%s\" of %s: %s", KEYS[i].def, KEYS[i].key, why);
        if (store(cfg, &KEYS[i], &v, KEYS[i].key, &e) != 0)
            die("config table: default of %s is invalid: %s", KEYS[i].key, err);
        free(v.own);
    }
    cfg->source = xstrdup("");
}

void config_free(PreferConfig *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < NKEYS; i++)
        if (is_string_key(&KEYS[i])) {
            char **sp = field_ptr(cfg, &KEYS[i]);
            free(*sp);
            *sp = NULL;
        }
    free(cfg->source);
    cfg->source = NULL;
}

int config_load_checked(PreferConfig *cfg, const char *path, const char *const *sets, int n_sets,
                        char *err, int errlen)
{
    Err e = {err, errlen};
    if (err && errlen > 0)
        err[0] = 0;
    table_check();

    /* Work on a deep copy so that a failure leaves cfg untouched. */
    PreferConfig tmp = *cfg;
    for (int i = 0; i < NKEYS; i++)
        if (is_string_key(&KEYS[i])) {
            char **sp = field_ptr(&tmp, &KEYS[i]);
            if (!*sp)
                die("config_load: %s is NULL (call config_defaults first)", KEYS[i].key);
            *sp = xstrdup(*sp);
        }
    tmp.source = xstrdup(path ? path : "");

    Origin org[NKEYS];
    memset(org, 0, sizeof org);
    int rc = path ? load_file(&tmp, path, org, &e) : 0;
    for (int i = 0; rc == 0 && i < n_sets; i++)
        rc = apply_set(&tmp, sets[i], org, &e);
    if (rc == 0)
        rc = check_cross(&tmp, path, org, &e);
    if (rc != 0) {
        config_free(&tmp);
        return -1;
    }
    config_free(cfg);
    *cfg = tmp;
    return 0;
}

void config_load(PreferConfig *cfg, const char *path, const char *const *sets, int n_sets)
{
    char err[1024];
    if (config_load_checked(cfg, path, sets, n_sets, err, sizeof err) != 0)
        die_user("%s", err);
}

static char *render(const PreferConfig *cfg, int reference)
{
    StrBuf b = {0};
    sb_printf(&b, "%s", "");
    if (reference)
        sb_printf(&b, "# prefer configuration reference: every key, its default and meaning.\n"
                      "# Generated by `prefer config --reference`; do not edit by hand.\n");
    for (int i = 0; i < NKEYS; i++) {
        const KeySpec *k = &KEYS[i];
        size_t sl = section_len(k->key);
        if (i == 0 || section_len(KEYS[i - 1].key) != sl || strncmp(KEYS[i - 1].key, k->key, sl)) {
            if (i > 0)
                sb_printf(&b, "};\n");
            sb_printf(&b, "%s%.*s: {\n", reference ? "\n" : "", (int)sl, k->key);
        } else if (reference) {
            sb_printf(&b, "\n");
        }
        if (reference) {
            for (const char *h = k->help; *h;) {
                size_t n = strcspn(h, "\n");
                sb_printf(&b, "  # %.*s\n", (int)n, h);
                h += n + (h[n] == '\n');
            }
            switch (k->type) {
            case KT_INT: sb_printf(&b, "  # integer in %s\n", k->range); break;
            case KT_INT64: sb_printf(&b, "  # 64-bit integer in %s\n", k->range); break;
            case KT_FLOAT: sb_printf(&b, "  # number in %s\n", k->range); break;
            case KT_BOOL: sb_printf(&b, "  # true or false\n"); break;
            case KT_STRING:
                sb_printf(&b, "  # string%s\n", k->flags & KF_NONEMPTY ? ", not empty" : "");
                break;
            case KT_CHOICE: sb_printf(&b, "  # one of: %s\n", k->choices); break;
            }
        }
        Value v = get_field(cfg, k);
        sb_printf(&b, "  %s = ", leaf_name(k->key));
        format_value(&b, k, &v);
        sb_printf(&b, ";\n");
    }
    if (NKEYS > 0)
        sb_printf(&b, "};\n");
    return b.p;
}

char *config_to_text(const PreferConfig *cfg) { return render(cfg, 0); }

char *config_reference_text(void)
{
    PreferConfig d;
    config_defaults(&d);
    char *t = render(&d, 1);
    config_free(&d);
    return t;
}
