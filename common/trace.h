/* trace — keeps copies of what peers sent, for a support case or as fuzzing seeds.
 *
 * When the environment variable names a directory, each call writes the bytes to
 * DIR/PID-SEQ-WHAT (mode 0600, never overwriting). Off (one getenv) otherwise. Callers never
 * pass secrets: the SOAP layer keeps answers, not requests (Login carries the password); the
 * wire layer skips enrollment (it carries the site token). A failed write is logged, not
 * returned: tracing never changes what the program does. */
#ifndef VB_TRACE_H
#define VB_TRACE_H

#include <stddef.h>

#define VB_TRACE_SOAP_ENV "VBAK_SOAP_TRACE_DIR"
#define VB_TRACE_WIRE_ENV "VBAK_WIRE_TRACE_DIR"

void vb_trace_write(const char *env_var, const char *what, const void *data, size_t len);

#endif
