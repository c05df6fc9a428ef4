/* tokenize_cmd.c: `prefer tokenize DIR`: GPT-2 BPE on standard input, like tiktoken's CLI.
 *
 * Does: encode standard input line by line into one line of space-separated token ids per
 * input line (the newline itself is not encoded; a last line without one still counts);
 * --decode turns lines of ids back into text lines; --bench FILE times the encoding of a
 * whole file with a cold and a warm pre-token cache. Runs on rank 0 only (other ranks of an
 * mpirun return at once).
 * Does not: read a config, or write anything but standard output.
 */
#define _GNU_SOURCE
#include "prefer/bpe.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: prefer tokenize DIR [--decode] [--no-special] [--bench FILE]\n\n"
           "GPT-2's byte-level BPE with the tokenizer files in DIR: vocab.json + merges.txt, encoder.json +\n"
           "vocab.bpe, or tokenizer.json (scripts/fetch-gpt2-tokenizer.sh fetches GPT-2's).\n"
           "Reads standard input line by line and writes one line of space-separated token ids per\n"
           "input line; the newline itself is not encoded. Any bytes are accepted: decode(encode(s)) == s.\n"
           "  --decode      read lines of token ids, write the text of each line\n"
           "  --no-special  encode \"<|endoftext|>\" as ordinary text (default: the special token, 50256 in GPT-2)\n"
           "  --bench FILE  encode FILE whole, twice (cold, then warm pre-token cache), and print\n"
           "                tokenize: bytes=N tokens=M seconds=S MB_per_s=X cache=cold|warm (MB = 10^6 bytes)\n"
           "Under mpirun only rank 0 works. Exit codes: 0 success, 1 error, 2 usage error.\n");
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "prefer: tokenize: %s '%s' (try --help)\n", msg, arg);
    return PREFER_EXIT_USAGE;
}

/* Write v as decimal into p; returns the number of characters. */
static int put_int(char *p, int32_t v)
{
    char t[12];
    int n = 0;
    uint32_t u = v < 0 ? (uint32_t)(-(int64_t)v) : (uint32_t)v;
    do {
        t[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    int o = 0;
    if (v < 0)
        p[o++] = '-';
    while (n)
        p[o++] = t[--n];
    return o;
}

static void write_or_die(const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, stdout) != n)
        die_user("tokenize: writing standard output: %s", strerror(errno));
}

static void encode_stream(Bpe *b, int allow_special)
{
    char *line = NULL, *buf = NULL;
    size_t lcap = 0, bcap = 0;
    ssize_t len;
    BpeIds ids = {0};
    while ((len = getline(&line, &lcap, stdin)) >= 0) {
        size_t n = (size_t)len;
        if (n && line[n - 1] == '\n')
            n--;
        ids.n = 0;
        bpe_encode(b, line, n, allow_special, &ids);
        size_t need = ids.n * 12 + 1;
        if (need > bcap) {
            bcap = need * 2;
            buf = xrealloc(buf, bcap);
        }
        size_t o = 0;
        for (size_t i = 0; i < ids.n; i++) {
            if (i)
                buf[o++] = ' ';
            o += (size_t)put_int(buf + o, ids.ids[i]);
        }
        buf[o++] = '\n';
        write_or_die(buf, o);
    }
    if (ferror(stdin))
        die_user("tokenize: reading standard input: %s", strerror(errno));
    free(line);
    free(buf);
    bpe_ids_free(&ids);
}

static void decode_stream(const Bpe *b)
{
    char *line = NULL;
    size_t lcap = 0, icap = 0;
    int32_t *ids = NULL;
    ssize_t len;
    long lineno = 0;
    while ((len = getline(&line, &lcap, stdin)) >= 0) {
        lineno++;
        size_t n = 0;
        const char *p = line, *end = line + len;
        for (;;) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
            if (p >= end)
                break;
            const char *s = p;
            int64_t v = 0;
            while (p < end && *p >= '0' && *p <= '9' && v <= INT32_MAX)
                v = v * 10 + (*p++ - '0');
            if (p == s || v > INT32_MAX || (p < end && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')) {
                const char *e = s;
                while (e < end && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\r' && e - s < 40)
                    e++;
                die_user("tokenize --decode: standard input line %ld: '%.*s' is not a token id", lineno,
                         (int)(e - s), s);
            }
            if (n == icap) {
                icap = icap ? 2 * icap : 256;
                ids = xrealloc(ids, sizeof(int32_t) * icap);
            }
            ids[n++] = (int32_t)v;
        }
        char err[256];
        size_t olen = 0;
        char *text = bpe_decode(b, ids, n, &olen, err, sizeof err);
        if (!text)
            die_user("tokenize --decode: standard input line %ld: %s", lineno, err);
        write_or_die(text, olen);
        write_or_die("\n", 1);
        free(text);
    }
    if (ferror(stdin))
        die_user("tokenize --decode: reading standard input: %s", strerror(errno));
    free(line);
    free(ids);
}

static char *slurp(const char *path, size_t *len)
{
    char err[1024];
    char *b = util_read_file(path, SIZE_MAX, len, err, sizeof err);
    if (!b)
        die_user("tokenize --bench: %s", err);
    return b;
}

static void bench(Bpe *b, const char *path, int allow_special)
{
    size_t n = 0;
    char *text = slurp(path, &n);
    BpeIds first = {0}, ids = {0};
    for (int pass = 0; pass < 2; pass++) {
        BpeIds *v = pass == 0 ? &first : &ids;
        if (pass == 0)
            bpe_cache_clear(b);
        double t0 = now_s();
        bpe_encode(b, text, n, allow_special, v);
        double dt = now_s() - t0;
        printf("tokenize: bytes=%zu tokens=%zu seconds=%.4f MB_per_s=%.2f cache=%s\n", n, v->n, dt,
               dt > 0 ? (double)n / 1e6 / dt : 0.0, pass == 0 ? "cold" : "warm");
        fflush(stdout);
    }
    if (ids.n != first.n || memcmp(ids.ids, first.ids, sizeof(int32_t) * ids.n))
        die("tokenize --bench: the warm pass gave other ids than the cold one");
    bpe_ids_free(&first);
    bpe_ids_free(&ids);
    free(text);
}

int cmd_tokenize(int argc, char **argv)
{
    const char *dir = NULL, *bench_file = NULL;
    int decode = 0, no_special = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            if (dist_rank() == 0)
                usage();
            return 0;
        } else if (!strcmp(s, "--decode")) {
            decode = 1;
        } else if (!strcmp(s, "--no-special")) {
            no_special = 1;
        } else if (!strcmp(s, "--bench")) {
            if (i + 1 >= argc)
                return usage_error("--bench needs a FILE after", s);
            bench_file = argv[++i];
        } else if (!strncmp(s, "--bench=", 8)) {
            bench_file = s + 8;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("unknown option", s);
        } else if (!dir) {
            dir = s;
        } else {
            return usage_error("takes one DIR, got extra argument", s);
        }
    }
    if (!dir)
        return usage_error("needs the tokenizer directory DIR", "");
    if (decode && bench_file)
        return usage_error("--bench times encoding; it does not combine with", "--decode");
    if (dist_rank() != 0)
        return 0;
    Bpe *b = bpe_load_or_die(dir);
    if (bench_file) {
        double t0 = now_s();
        bpe_free(b);
        b = bpe_load_or_die(dir);
        printf("tokenize: %s: %d tokens, %d merges, %s, PCRE2 JIT %s, loaded in %.3f s\n", dir, bpe_vocab_size(b),
               bpe_n_merges(b), bpe_identity(b), bpe_pcre2_jit(b) ? "on" : "off", now_s() - t0);
        bench(b, bench_file, !no_special);
    } else if (decode) {
        decode_stream(b);
    } else {
        encode_stream(b, !no_special);
    }
    if (fflush(stdout))
        die_user("tokenize: writing standard output: %s", strerror(errno));
    bpe_free(b);
    return 0;
}
