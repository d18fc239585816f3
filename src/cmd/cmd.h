/* Subcommands of the seckill binary. Each returns the process exit code. */
#ifndef SK_CMD_CMD_H
#define SK_CMD_CMD_H

#include <stddef.h>
#include <stdio.h>

int sk_cmd_serve(int argc, char **argv);
int sk_cmd_drain(int argc, char **argv);

/** One command-line option and its environment variable. */
typedef struct {
    const char *name; /* long option without dashes, e.g. "listen" */
    const char *env; /* read as SECKILL_<env> first; NULL: none */
    const char **value; /* receives the text (a flag receives "1"); keeps its default when unset */
    int flag; /* takes no argument */
} sk_cmd_opt_t;

/** Fills every option from its environment variable, then from argv (a flag wins over
 *  the variable). Returns 0; 1 when --help/-h was given (usage printed to stdout); 2 on an
 *  unknown option, a missing argument or a stray argument (one line on stderr). */
int sk_cmd_parse(const char *cmd, int argc, char **argv, const sk_cmd_opt_t *opts, size_t n,
                 void (*print_usage)(FILE *f));

/** Reads an environment default: SECKILL_<name>, or NULL. */
const char *sk_cmd_env(const char *name);
/** Splits "host:port" / "[v6]:port". Returns 0 or -1. */
int sk_cmd_split_hostport(const char *s, char *host, size_t host_size, int *port);

#endif
