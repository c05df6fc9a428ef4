#!/bin/sh
# sentiment-experiment.sh [OUT]: the DPO paper's controlled-sentiment task, on Debian's
# fortunes with the AFINN-165 lexicon as the reward (docs/sentiment.md).
#
#   data    scripts/sentiment-data.sh OUT/data   (fortunes, GPT-2 tokenizer, lexicon; import)
#   sft     prefer train   configs/experiments/sentiment/sft.cfg -> OUT/sft
#   sample  prefer sample  K responses per training prompt -> OUT/samples.h5 (decoded printed)
#   label   prefer label   lexicon score of each decoded response, Bradley-Terry pairs -> OUT/prefs.h5
#   dpo     prefer train   configs/experiments/sentiment/dpo.cfg at each beta -> OUT/dpo-B
#   eval    prefer eval    lexicon reward of policy and reference samples on held-out prompts,
#                          KL, win rate -> OUT/eval-B.txt
# then prints the table (beta, reference reward, DPO reward, KL, win rate; also OUT/table.txt)
# and decoded held-out samples of the SFT model and of the DPO model at the last beta.
# Knobs (environment): BETAS ("0.05 0.1 0.5"), K (4), NP (ranks, 2), SFT_STEPS (300),
# DPO_STEPS (120), EVAL_SAMPLES (4), SHOW (4 decoded samples before/after), SET (extra --set
# arguments for every prefer command, e.g. "--set model.n_layer=1"), and the data knobs of
# sentiment-data.sh (WORDS, PROMPTS, HELDOUT, MAX_FORTUNES, ...). BIN (bin).
# Exit codes: 0 ok; 1 error; 3 the data cannot be fetched (see sentiment-data.sh).
set -eu

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

OUT="${1:-sentiment-out}"
BIN="${BIN:-bin}"
BETAS="${BETAS:-0.05 0.1 0.5}"
K="${K:-4}"
NP="${NP:-2}"
SFT_STEPS="${SFT_STEPS:-300}"
DPO_STEPS="${DPO_STEPS:-120}"
EVAL_SAMPLES="${EVAL_SAMPLES:-4}"
SHOW="${SHOW:-4}"
SET="${SET:-}"
CACHE="${PREFER_CACHE:-$HOME/.cache/prefer}"
TOK="$CACHE/gpt2-tokenizer"
LEX="$CACHE/sentiment-lexicon"
CFG=configs/experiments/sentiment
HERE="$(cd "$(dirname "$0")" && pwd)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$NP" -gt 1 ]; then RUN="mpirun -np $NP --oversubscribe $BIN/prefer"; else RUN="$BIN/prefer"; fi
# config echo and MPI noise off; progress lines kept
quiet() { grep -v -e '^  ' -e '^#' -e '^[a-z]*: {' -e '^};' -e '^prefer: config' || true; }
say() { echo "sentiment-experiment: $*"; }
t0=$(date +%s)

rc=0
PREFER="$BIN/prefer" sh "$HERE/sentiment-data.sh" "$OUT/data" || rc=$?
[ "$rc" = 0 ] || exit "$rc"

# every stage's paths, so the configs' defaults never leak in
COMMON="--set sample.tokenizer=$TOK --set label.lexicon=$LEX --set label.tokenizer=$TOK \
--set eval.lexicon=$LEX --set eval.tokenizer=$TOK --set eval.data=$OUT/data/heldout.h5 \
--set eval.ref=$OUT/sft/latest.h5 --set eval.n_samples=$EVAL_SAMPLES"

say "SFT ($SFT_STEPS steps)"
# shellcheck disable=SC2086
$RUN train $CFG/sft.cfg $COMMON --set train.data=$OUT/data/sft.h5 --set train.out_dir=$OUT/sft \
    --set train.steps=$SFT_STEPS $SET | quiet

say "sample: $K responses per training prompt from the SFT model"
# shellcheck disable=SC2086
$RUN sample $CFG/sft.cfg $COMMON --set sample.checkpoint=$OUT/sft/latest.h5 \
    --set sample.data=$OUT/data/prompts.h5 --set sample.out=$OUT/samples.h5 --set sample.n=$K $SET | quiet

say "label: AFINN lexicon, Bradley-Terry pairs"
# shellcheck disable=SC2086
$BIN/prefer label $CFG/sft.cfg $COMMON --set label.in=$OUT/samples.h5 --set label.out=$OUT/prefs.h5 $SET | quiet

for b in $BETAS; do
    say "DPO beta=$b ($DPO_STEPS steps)"
    # shellcheck disable=SC2086
    $RUN train $CFG/dpo.cfg $COMMON --set model.init_from=$OUT/sft/latest.h5 --set train.data=$OUT/prefs.h5 \
        --set train.out_dir=$OUT/dpo-$b --set loss.beta=$b --set train.steps=$DPO_STEPS $SET | quiet
    # shellcheck disable=SC2086
    $RUN eval $CFG/dpo.cfg $COMMON --set eval.policy=$OUT/dpo-$b/latest.h5 --set eval.out=$OUT/eval-$b.h5 \
        $SET >"$OUT/eval-$b.txt" 2>&1 || { cat "$OUT/eval-$b.txt"; exit 1; }
    grep -e '^eval: lexicon' "$OUT/eval-$b.txt" || true
done

# the table, from each eval's last line: eval: reward=R reward_ref=R0 kl=K win_rate=W pref_acc=A
{
    printf '%-8s %12s %12s %10s %10s\n' beta reward_ref reward_dpo kl win_rate
    for b in $BETAS; do
        line=$(grep '^eval: reward=' "$OUT/eval-$b.txt" | tail -n 1)
        val() { echo "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
        r=$(echo "$line" | sed -n 's/^eval: reward=\([^ ]*\).*/\1/p')
        printf '%-8s %12s %12s %10s %10s\n' "$b" "$(val reward_ref)" "$r" "$(val kl)" "$(val win_rate)"
    done
} >"$OUT/table.txt"
echo
say "lexicon reward (AFINN sum per sampled continuation, held-out prompts), KL(policy || SFT), win rate over SFT:"
cat "$OUT/table.txt"

last=""
for b in $BETAS; do last=$b; done
for who in sft "dpo-$last"; do
    echo
    say "decoded held-out samples, $who:"
    # shellcheck disable=SC2086
    $BIN/prefer sample $CFG/sft.cfg $COMMON --set sample.checkpoint=$OUT/$who/latest.h5 \
        --set sample.data=$OUT/data/heldout.h5 --set sample.out=$OUT/show-$who.h5 --set sample.n=1 \
        --set sample.print=$SHOW --set sample.seed=11 $SET 2>&1 | grep -a '^sample: \[' || true
done
say "done in $(($(date +%s) - t0)) s; results in $OUT"
