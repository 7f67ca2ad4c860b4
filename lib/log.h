/* SPDX-License-Identifier: Apache-2.0 */
/* One log line per event on stderr: `ts=... level=... msg="..." key=value`.
 * Never pass keys, tokens or certificates to these functions. */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* Parses debug|info|warn|error; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
int log_enabled(enum log_level level);
/* fmt carries the key=value pairs after the message, e.g. "uid=%s". */
void log_event(enum log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replaces control characters, '"' and '\\' in s with '?', in place, so a
 * value from a request cannot forge or break a log line. Returns s. */
char *log_clean(char *s);

#define log_debug(msg, ...) log_event(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_event(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_event(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_event(LOG_ERROR, msg, __VA_ARGS__)

#endif
