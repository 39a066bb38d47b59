/*
 * status: `paintstudio status`, the operator's view of a running process.
 * It asks the process's own FastCGI socket (FCGI_LISTEN) for /metrics, as
 * a loopback scraper would, and prints pool, cache and alert state.
 */
#ifndef PS_STATUS_H
#define PS_STATUS_H

#include <stddef.h>

#include "base/strbuf.h"

/*
 * Send one GET for path to the FastCGI server at spec ("unix:/path" or
 * "host:port") and append the response (CGI headers and body) to out.
 * Waits at most timeout seconds. Returns 0, or -1 with the reason in err.
 */
int status_fcgi_get(const char *spec, const char *path, double timeout, struct strbuf *out,
		    char *err, size_t errlen);

/* The value of the first sample of metric (optionally {labels}) in text, or -1. */
double status_metric(const char *text, const char *metric);

/* Run the command: print the table; 0 when the process answered, else 1. */
int status_run(const char *spec);

#endif
