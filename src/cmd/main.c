/* seckill: the flash-sale engine. `seckill serve` runs a node. */
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
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "seckill: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
