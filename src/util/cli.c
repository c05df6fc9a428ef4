/* cli.c: shared option parsing for the subcommands. */
#include "prefer/cli.h"
#include "prefer/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PREFER_NORETURN static void usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "prefer: %s '%s' (try --help)\n", msg, arg);
    fflush(stderr);
    if (util_size() > 1)
        die("usage error");
    exit(PREFER_EXIT_USAGE);
}

void cli_parse(int argc, char **argv, CliArgs *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = argc > 0 ? argv[0] : "prefer";
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            a->help = 1;
        } else if (!strcmp(s, "--set")) {
            if (i + 1 >= argc)
                usage_error("--set needs section.key=value after", s);
            if (a->n_sets >= CLI_MAX_SETS)
                usage_error("too many --set options at", argv[i + 1]);
            a->sets[a->n_sets++] = argv[++i];
        } else if (!strncmp(s, "--set=", 6)) {
            if (a->n_sets >= CLI_MAX_SETS)
                usage_error("too many --set options at", s);
            a->sets[a->n_sets++] = s + 6;
        } else if (s[0] == '-' && s[1] != 0) {
            if (a->n_flags >= CLI_MAX_POS)
                usage_error("too many options at", s);
            a->flags[a->n_flags++] = s;
        } else {
            if (a->n_pos >= CLI_MAX_POS)
                usage_error("too many arguments at", s);
            a->pos[a->n_pos++] = s;
        }
    }
}

int cli_has_flag(const CliArgs *a, const char *flag)
{
    for (int i = 0; i < a->n_flags; i++)
        if (!strcmp(a->flags[i], flag))
            return 1;
    return 0;
}

void cli_check_flags(const CliArgs *a, const char *cmd, const char *const *allowed)
{
    for (int i = 0; i < a->n_flags; i++) {
        int ok = 0;
        for (const char *const *p = allowed; p && *p; p++)
            if (!strcmp(*p, a->flags[i]))
                ok = 1;
        if (!ok) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s: unknown option", cmd);
            usage_error(msg, a->flags[i]);
        }
    }
}

void cli_load_config(const CliArgs *a, PreferConfig *cfg)
{
    if (a->n_pos > 1) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s takes one CONFIG, got extra argument", a->cmd);
        usage_error(msg, a->pos[1]);
    }
    config_defaults(cfg);
    config_load(cfg, a->n_pos > 0 ? a->pos[0] : NULL, a->sets, a->n_sets);
}

void cli_print_config(const PreferConfig *cfg)
{
    if (util_rank() != 0)
        return;
    char *t = config_to_text(cfg);
    say("# effective config (%s)\n%s# end of config\n", cfg->source && *cfg->source ? cfg->source : "defaults", t);
    free(t);
}

int cli_start(int argc, char **argv, const char *cmd, void (*usage)(void), const char *const *allowed, CliArgs *a,
              PreferConfig *cfg)
{
    cli_parse(argc, argv, a);
    if (a->help) {
        if (util_rank() == 0)
            usage();
        return 1;
    }
    cli_check_flags(a, cmd, allowed);
    cli_load_config(a, cfg);
    return 0;
}
