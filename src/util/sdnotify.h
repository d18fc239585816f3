/* systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram to the
 * socket named in $NOTIFY_SOCKET. Used by `Type=notify` units (deploy/systemd/). */
#ifndef SK_UTIL_SDNOTIFY_H
#define SK_UTIL_SDNOTIFY_H

/** Sends `state` (e.g. "READY=1", "STOPPING=1", "STATUS=...") to the service manager.
 *  Returns 1 when sent, 0 when not run under a manager that asked for it, or -errno. */
int sk_sd_notify(const char *state);

#endif
