/* fuzz_config.c: libFuzzer target for the config reader (src/config/config.c: libconfig
 * syntax, then prefer's key table, types, ranges, choices and cross-key checks).
 *
 * config.c reads configs only from files (libconfig's config_read_file, no string entry
 * point), so the input is written to an anonymous memory file (memfd_create) and loaded
 * through config_load_checked with the path /proc/self/fd/N: the normal path, which returns
 * -1 with a message instead of dying. Each input starts from config_defaults.
 *
 * Does not: fuzz --set overrides. An input with @include "FILE" makes libconfig read that
 * file (as a user's config would); the fuzzer runs in its own directory.
 * Built by `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#define _GNU_SOURCE
#include "prefer/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.cfg", 0);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            perror("write");
            abort();
        }
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    PreferConfig cfg;
    config_defaults(&cfg);
    char err[1024];
    (void)config_load_checked(&cfg, path, NULL, 0, err, sizeof err);
    config_free(&cfg);
    close(fd);
    return 0;
}
