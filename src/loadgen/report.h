/* The load generator's output: a human table on stdout and a JSON document with every
 * figure, for benchmarks and CI to compare runs.
 *
 * Ownership: everything is borrowed; nothing is kept after the call. */
#ifndef SK_LOADGEN_REPORT_H
#define SK_LOADGEN_REPORT_H

#include <stdio.h>

#include "audit/audit.h"
#include "loadgen/scenario.h"

/** Prints the outcome table, throughput, timeline and client cost. */
void sk_loadgen_report_print(FILE *out, const sk_loadgen_config_t *cfg, const sk_loadgen_results_t *res);

/** Prints the audit counts and the verdict line ("AUDIT OK" / "AUDIT FAILED: ..."). */
void sk_loadgen_report_audit(FILE *out, const sk_audit_t *a);

/** Prints one line of phase times, "  <title>: name 1.23 s, ...; total 4.56 s". */
void sk_loadgen_report_phases(FILE *out, const char *title, const sk_loadgen_phases_t *p);

/** Writes the JSON report to path ("-" for stdout). `audit` may be NULL (not run) and
 *  `audit_error` non-NULL when it could not run. Returns 0 or -errno. */
int sk_loadgen_report_json(const char *path, const sk_loadgen_config_t *cfg, const sk_loadgen_results_t *res,
                           const sk_audit_t *audit, const char *audit_error);

#endif
