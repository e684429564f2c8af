/* timefmt — ISO 8601 times for the CLI and JSON. The catalog stores Unix milliseconds (UTC);
 * people read and type ISO 8601.
 *
 * Formatting writes "2026-11-30T09:40:13Z" (UTC) or "2026-11-30T10:40:13+01:00" (a fixed
 * offset), with ".123" milliseconds when asked. Parsing accepts the extended ISO 8601 forms a
 * user or a script is likely to type:
 *   2026-11-30                      midnight UTC of that day
 *   2026-11-30T09:40                minutes; seconds default to 0
 *   2026-11-30T09:40:13             (a space may stand for the T; t and z in lower case too)
 *   2026-11-30T09:40:13.5           fractions of a second (1-9 digits, kept to the millisecond)
 *   ...Z  ...+01:00  ...-0530  ...+01   zone designator; without one the time is UTC
 * Anything else is VB_EINVAL with a message that quotes the text and says what is wrong
 * (month 13, February 30, hour 24, an offset past 23:59, trailing characters, ...).
 * Years 0000-9999; times before 1970 are negative milliseconds. */
#ifndef VB_TIMEFMT_H
#define VB_TIMEFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Enough for "-YYYY-MM-DDTHH:MM:SS.mmm+HH:MM" and the terminating NUL. */
#define VB_TIME_BUF 40

/* Formats unix_ms in UTC ("...Z"). VB_EINVAL when `size` is too small or the year is outside
 * 0000-9999. */
int vb_time_format_utc(int64_t unix_ms, bool with_ms, char *buf, size_t size) VB_WUR;

/* Formats unix_ms as local time at `offset_minutes` east of UTC ("+01:00"; 0 gives "+00:00").
 * VB_EINVAL as above or when |offset| > 23:59. */
int vb_time_format_offset(int64_t unix_ms, int offset_minutes, bool with_ms, char *buf,
                          size_t size) VB_WUR;

/* Parses an ISO 8601 date-time (forms above) into Unix milliseconds. */
int vb_time_parse(const char *text, int64_t *unix_ms_out) VB_WUR;

/* The local zone's offset from UTC at that instant, in minutes east (for showing local times). */
int vb_time_local_offset(int64_t unix_ms, int *offset_minutes_out) VB_WUR;

/* Now, in Unix milliseconds (CLOCK_REALTIME). */
int64_t vb_time_now_ms(void);

#endif
