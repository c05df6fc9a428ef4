/* did.h: DID preference data on an enumerable synthetic task (src/data/did.c, docs/did.md):
 * chosen and rejected responses drawn exactly from pi*, pi_ref, the DID-optimal rejected
 * sampler pi_l ~ pi_ref^(1+beta) / pi*^beta, or a mixture, per synth.chosen_from and
 * synth.rejected_from. */
#ifndef PREFER_DID_H
#define PREFER_DID_H

#include <hdf5.h>

#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/synth.h"

typedef struct {
    int64_t n_responses;   /* size of the enumerable space per prompt */
    double did_entropy;    /* mean over prompts of H(q), q ~ pi_chosen / pi_rejected (NaN for reference_best) */
    double kl_dpo_star;    /* mean KL(pi_dpo || pi*), pi_dpo ~ pi_ref (pi_c / pi_rej)^(1/beta) (NaN for reference_best) */
    double kl_star_ref;    /* mean KL(pi* || pi_ref) */
    double reward_star, reward_ref; /* mean true reward under pi* and pi_ref */
    int64_t n_same;        /* pairs whose two responses are the same */
    int64_t n_chosen_better; /* pairs whose chosen response has the higher true reward */
} DidStats;

/* 1 when synth.rejected_from asks for DID data instead of teacher responses. */
int did_enabled(const SynthConfig *sc);
/* The DID preference data of n_prompts prompts of split (t is rebound to it): prompt i, then
 * synth.did_pairs pairs of two fresh responses each, scored with the true reward. beta =
 * loss.beta. Dies (die_user) when the space is not enumerable within synth.did_max_responses. */
void did_make_prefs(SynthTask *t, const SynthConfig *sc, double beta, int split, int64_t n_prompts, PrefData *out,
                    DidStats *st);
/* The did_* root attributes of the file (docs/did.md). */
void did_put_attrs(hid_t f, const SynthConfig *sc, double beta, const DidStats *st);

#endif
