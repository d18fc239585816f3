/* seckill: the flash-sale engine. `seckill serve` runs a node. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"

static void usage(FILE *f)
{
    fputs("usage: seckill <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve     run the HTTP service (embedded store by default)\n"
          "  drain     move a cluster's orders from Redis into PostgreSQL\n"
          "  help      show this text\n"
          "\n"
          "Run 'seckill <command> --help' for the options of a command.\n",
          f);
}

const char *sk_cmd_env(const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "SECKILL_%s", name);
    const char *v = getenv(key);
    return v && *v ? v : NULL;
}

int sk_cmd_parse(const char *cmd, int argc, char **argv, const sk_cmd_opt_t *opts, size_t n,
                 void (*print_usage)(FILE *f))
{
    for (size_t i = 0; i < n; i++) {
        const char *v = opts[i].env ? sk_cmd_env(opts[i].env) : NULL;
        if (v)
            *opts[i].value = v;
    }
    struct option *lo = calloc(n + 2, sizeof(*lo));
    if (!lo)
        abort();
    for (size_t i = 0; i < n; i++)
        lo[i] = (struct option){opts[i].name, opts[i].flag ? no_argument : required_argument, NULL, 256 + (int)i};
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    optind = 1;
    opterr = 0;
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'h') {
            print_usage(stdout);
            rc = 1;
        } else if (c >= 256 && c < 256 + (int)n) {
            *opts[c - 256].value = opts[c - 256].flag ? "1" : optarg;
        } else {
            fprintf(stderr, "seckill %s: unknown or incomplete option '%s' (see --help)\n", cmd, argv[optind - 1]);
            rc = 2;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "seckill %s: unexpected argument '%s' (see --help)\n", cmd, argv[optind]);
        rc = 2;
    }
    free(lo);
    return rc;
}

int sk_cmd_split_hostport(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        hl = (size_t)(rb - s - 1);
        s++;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= host_size)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || p < 1 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return sk_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "drain") == 0)
        return sk_cmd_drain(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "seckill: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
