#!/bin/sh
# demo.sh: the demo pipeline on one rank (what `make demo` runs).
#   1. prefer synth: the synthetic teacher language -> demo-out/sft.h5
#   2. prefer train: SFT of a small GPT-2-style model on it, progress every 25 steps
#   3. prefer info: the checkpoint it wrote
# The SFT loss should fall from ~log(64) = 4.16 towards the teacher's entropy, the lowest
# loss any model can reach on this data (printed by synth).
set -e
: "${BIN:=bin}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CFG=configs/demo.cfg
mkdir -p demo-out
echo "== 1/3 synth: the teacher language"
"$BIN/prefer" synth "$CFG" | grep -v -e '^  ' -e '^#' -e '^[a-z]*: {' -e '^};'
echo "== 2/3 train: SFT"
"$BIN/prefer" train "$CFG" | grep -v -e '^  ' -e '^#' -e '^[a-z]*: {' -e '^};'
echo "== 3/3 the checkpoint"
"$BIN/prefer" info demo-out/sft/latest.h5 | head -12
