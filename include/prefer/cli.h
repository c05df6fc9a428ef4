/* cli.h: the subcommands of bin/prefer and their shared argument handling.
 *
 * Every command takes: [CONFIG] [--set section.key=value ...] [--help], with command-
 * specific options declared by the command. MPI is already initialised when a command
 * runs (dist.h), so commands may call die() freely.
 */
#ifndef PREFER_CLI_H
#define PREFER_CLI_H

#include "prefer/config.h"

#define CLI_MAX_SETS 64
#define CLI_MAX_POS 8

typedef struct {
    const char *sets[CLI_MAX_SETS];
    int n_sets;
    const char *pos[CLI_MAX_POS]; /* positional arguments (CONFIG, FILE ...) */
    int n_pos;
    const char *flags[CLI_MAX_POS]; /* other "--xxx" flags, for the command to check */
    int n_flags;
    int help;
    const char *cmd; /* argv[0]: the command's name, for messages */
} CliArgs;

/* Parse argv (argv[0] = command name). --set k=v and --set=k=v are collected; --help/-h
 * sets help. Unknown "--flag"s are collected in flags (the command validates them with
 * cli_check_flags). Dies (usage error) on a malformed option. */
void cli_parse(int argc, char **argv, CliArgs *a);
/* Die with a usage error if a flag is not in the NULL-terminated list `allowed`. */
void cli_check_flags(const CliArgs *a, const char *cmd, const char *const *allowed);
int cli_has_flag(const CliArgs *a, const char *flag);
/* Load the config (pos[0] if present, else defaults) with the --set overrides. A second
 * positional argument is a usage error ("CMD takes one CONFIG"). */
void cli_load_config(const CliArgs *a, PreferConfig *cfg);
/* The common start of a command taking [CONFIG] [--set ...]: parse argv, and on --help call
 * usage() on rank 0 and return 1 (the command returns 0); else check the flags against
 * allowed (NULL-terminated, or NULL for none), load the config into *cfg and return 0. */
int cli_start(int argc, char **argv, const char *cmd, void (*usage)(void), const char *const *allowed, CliArgs *a,
              PreferConfig *cfg);
/* Print the effective config from rank 0, framed. */
void cli_print_config(const PreferConfig *cfg);

/* Commands: return the exit code. */
int cmd_train(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_label(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_scaling(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_pvar(int argc, char **argv);
int cmd_exact(int argc, char **argv);
int cmd_dynamics(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_import_hf(int argc, char **argv);
int cmd_export_hf(int argc, char **argv);
int cmd_logprob(int argc, char **argv);
int cmd_iterate(int argc, char **argv);

#endif
