/* Subcommands of the seckill binary. Each returns the process exit code. */
#ifndef SK_CMD_CMD_H
#define SK_CMD_CMD_H

int sk_cmd_serve(int argc, char **argv);

/** Reads an environment default: SECKILL_<name>, or NULL. */
const char *sk_cmd_env(const char *name);
/** Splits "host:port" / "[v6]:port". Returns 0 or -1. */
int sk_cmd_split_hostport(const char *s, char *host, size_t host_size, int *port);

#endif
