/* error — vbak's error codes and the thread-local message that explains the last failure.
 *
 * Functions that can fail return 0 on success or a negative VB_E* code, and set a message with
 * vb_error_set() at the place the failure is found. Callers that add context use
 * vb_error_prefix(). The message is per thread and lives until the next vb_error_set on that
 * thread; vb_error_msg() returns a borrowed pointer. */
#ifndef VB_ERROR_H
#define VB_ERROR_H

#include <stddef.h>

#define VB_WUR __attribute__((warn_unused_result))
#define VB_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum {
    VB_OK = 0,
    VB_EINVAL = -1,    /* bad argument, bad input from a user or a file */
    VB_ENOMEM = -2,    /* out of memory or a hard size limit reached */
    VB_EIO = -3,       /* an I/O or system call failed */
    VB_ENOTFOUND = -4, /* the named thing does not exist */
    VB_EEXISTS = -5,   /* the named thing exists already */
    VB_EPROTO = -6,    /* malformed or unexpected message from a peer */
    VB_ETIMEOUT = -7,  /* a peer did not answer in time */
    VB_EPOLICY = -8,   /* refused by a rule (transport policy, restore rules) */
    VB_ECORRUPT = -9,  /* stored data failed a check */
    VB_EAUTH = -10,    /* wrong token, key, password, thumbprint or certificate */
    VB_EDB = -11,      /* the catalog database failed */
    VB_EBUSY = -12,    /* the resource is in use */
    VB_ENOSPC = -13,   /* no space left on a device */
    VB_EUNSUPPORTED = -14, /* a version or feature outside what vbak supports */
};

/* Sets the calling thread's message and returns code, so callers can write
 * `return vb_error_set(VB_EINVAL, "...")`. */
int vb_error_set(int code, const char *fmt, ...) VB_PRINTF(2, 3);

/* Puts "prefix: " in front of the current message; returns code. */
int vb_error_prefix(int code, const char *fmt, ...) VB_PRINTF(2, 3);

/* The calling thread's last message ("" when none). Borrowed. */
const char *vb_error_msg(void);

/* The last error code set on this thread (0 when none). */
int vb_error_code(void);

/* Clears the calling thread's message. */
void vb_error_clear(void);

/* A short constant name for a code: "not found", "protocol error", ... */
const char *vb_strerror(int code);

#endif
