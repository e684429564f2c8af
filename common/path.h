/* path — building file names into fixed buffers without silent truncation. */
#ifndef VB_PATH_H
#define VB_PATH_H

#include <stddef.h>

#include "error.h"

/* snprintf into buf; VB_EINVAL (message names the start of the name) when it does not fit. */
int vb_pathf(char *buf, size_t size, const char *fmt, ...) VB_PRINTF(3, 4);

/* A name from input vbak does not trust (a guest file system's directory entry) that is to be
 * created under a directory of ours: 0 when it is one path component — not empty, not "." or
 * "..", no '/' — else VB_ECORRUPT naming it, so nothing is ever written outside that directory. */
int vb_path_check_component(const char *name) VB_WUR;

/* mkdir -p: makes `path` and any missing parents with `mode`; an existing directory is fine. */
int vb_mkdir_p(const char *path, unsigned mode) VB_WUR;

/* One line of /proc/self/mountinfo: the mount point (field 5) and the mount source (the second
 * field after " - "), each with the kernel's octal escapes (\040 for a space, \011, \012,
 * \134) undone, into mnt and source. 0, or VB_EINVAL when the line is not one or a field does
 * not fit. */
int vb_mountinfo_line(const char *line, char *mnt, size_t mnt_size, char *source,
                      size_t source_size) VB_WUR;

#endif
