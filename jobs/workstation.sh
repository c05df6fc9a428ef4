#!/bin/sh
# workstation.sh: the whole pipeline (synth -> SFT -> sample -> label -> DPO, IPO -> eval)
# with mpirun on one machine, P ranks.
#   jobs/workstation.sh [P]        (default P = 2)
# Knobs: P ranks; OPENBLAS_CORETYPE (the kernel: prefer prints the one it runs and never
# changes it); PREFER_DEMO_STEPS (DPO/IPO steps). Results: demo-out/ and a table.
set -e
cd "$(dirname "$0")/.."
NP=${1:-2}
make -s bin/prefer
NP=$NP sh scripts/demo.sh
