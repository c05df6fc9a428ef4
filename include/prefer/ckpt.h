/* ckpt.h: checkpoints in HDF5 (format "prefer.checkpoint", docs/formats.md).
 *
 *   /params/<tensor name>     float32 with the tensor's shape (names from gpt.h)
 *   /adam/m/<name>, /adam/v/<name>   AdamW moments (absent in weights-only files)
 *   root attributes: format, version, producer, config (effective config text),
 *     vocab_size, context, n_layer, n_head, n_embd, step, adam_t, rng_key, rng_counter
 *
 * Written by rank 0 to "<path>.tmp", fsynced and renamed: a crash mid-write never
 * replaces a good checkpoint with a bad one.
 */
#ifndef PREFER_CKPT_H
#define PREFER_CKPT_H

#include <stdint.h>

#include "prefer/gpt.h"
#include "prefer/optim.h"

#define CKPT_FORMAT "prefer.checkpoint"
#define CKPT_VERSION 1

typedef struct {
    int64_t step;        /* optimizer steps done */
    uint64_t rng_key;    /* training RNG stream (rng.h) */
    uint64_t rng_counter;
    double bco_delta, bco_count; /* bco_pair's running reward baseline (losses.h); 0 if absent */
    /* PVar curriculum (train.h): the current curriculum epoch, the step it began at, and
     * its selected prompts (sorted; n_sel = 0 and sel = NULL when there is no curriculum).
     * On load sel is allocated (caller frees) and cur_epoch = -1 if absent. */
    int64_t cur_epoch, cur_start, n_sel;
    int64_t *sel;
} CkptState;

/* Save model params (and opt moments if opt != NULL) with state and config text.
 * Dies naming the file on any I/O error. Refuses (dies) if any parameter is not finite. */
void ckpt_save(const char *path, const Gpt *m, const AdamW *opt, const CkptState *st,
               const char *config_text);

/* Read only the model dimensions of a checkpoint. Returns 0, or -1 with err. */
int ckpt_read_dims(const char *path, GptDims *d, char *err, int errlen);

/* Load into an initialised model of the same dimensions (and opt, if non-NULL and the
 * file has moments; opt->t is restored). st may be NULL. Returns 0, or -1 with a message
 * naming the file and the tensor (missing, wrong shape, non-finite, foreign file). */
int ckpt_load_checked(const char *path, Gpt *m, AdamW *opt, CkptState *st, char *err, int errlen);
/* Read a checkpoint's dims, initialise m as a forward-only model (gpt_init_infer: no
 * gradients, no backward) for up to max_batch sequences of up to max_seq tokens (capped at
 * its context), or of pack_seq tokens if longer (packed sequences, e.g. reflogp_seq_len,
 * whose positions stay within the context), and load the weights. Dies naming the file on
 * errors. */
void ckpt_load_model(const char *path, int max_batch, int max_seq, int pack_seq, Gpt *m);

/* As above, dying with the message. */
void ckpt_load(const char *path, Gpt *m, AdamW *opt, CkptState *st);

#endif
