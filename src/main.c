/* main.c: bin/prefer command dispatch. Initialises MPI (one rank without a launcher),
 * runs the subcommand, finalises. */
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/util.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"train", cmd_train, "train a policy: train.objective = sft, dpo, ipo, simpo, ... (or a weighted list)"},
    {"synth", cmd_synth, "write the synthetic preference task: SFT, training and held-out files (HDF5)"},
    {"label", cmd_label, "label K responses per prompt with Bradley-Terry pairs (true reward on the synthetic task)"},
    {"eval", cmd_eval, "score a policy against its reference on held-out prompts (reward, KL, win rate)"},
    {"iterate", cmd_iterate, "iterative alignment: rounds of sample (mixed sampler) -> label (BT or cyclic oracle) -> train"},
    {"pvar", cmd_pvar, "preference variance of every prompt (model or scores) and top/bottom/random selection"},
    {"exact", cmd_exact, "exact distributions on the enumerable synthetic task: KLs, DID entropy, optimum, masses"},
    {"dynamics", cmd_dynamics, "the paper's tabular iterative-alignment dynamics over an (alpha, beta, lambda) grid: phase diagram"},
    {"import", cmd_import, "JSONL preference data (TRL/HH-RLHF/UltraFeedback layouts) -> tokenized prefdata file"},
    {"tokenize", cmd_tokenize, "GPT-2 BPE: standard input to token ids, one line per line (--decode: back to text)"},
    {"sample", cmd_sample, "sample responses to a dataset's prompts from a checkpoint (KV cache, top-k/top-p)"},
    {"info", cmd_info, "summarise any HDF5 file prefer writes"},
    {"config", cmd_config, "print the effective config, or every key with --reference"},
    {"bench", cmd_bench, "time forward+backward against the sgemm ceiling"},
    {"bench-scaling", cmd_bench_scaling, "time the data-parallel step and its gradient allreduce (run under mpirun)"},
    {"import-hf", cmd_import_hf, "Hugging Face GPT-2 directory (config.json, model.safetensors) -> prefer checkpoint"},
    {"export-hf", cmd_export_hf, "prefer checkpoint -> Hugging Face GPT-2 directory (transformers loads it)"},
    {"logprob", cmd_logprob, "log-probability of each line of token ids on stdin under a checkpoint"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: prefer COMMAND [CONFIG] [--set section.key=value ...] [--help]\n\n"
               "A trainer that aligns transformer language models with preferences (DPO, IPO, ...)\n"
               "by data-parallel training over MPI. Run under mpirun or srun, or alone (one rank).\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`prefer COMMAND --help` describes a command. Every key: `prefer config --reference`.\n"
               "Exit codes: 0 success, 1 error, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? PREFER_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("prefer 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            dist_init(&argc, &argv);
            int rc = commands[i].fn(argc - 1, argv + 1);
            dist_finalize();
            return rc;
        }
    fprintf(stderr, "prefer: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return PREFER_EXIT_USAGE;
}
