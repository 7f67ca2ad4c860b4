/* SPDX-License-Identifier: Apache-2.0 */
/* One log line per event on stderr: `ts=... level=... msg="..." key=value`.
 * Never pass keys, tokens or certificates to these functions. */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H
#include <stddef.h>

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

/* Lines a consumer parses as JSON (the proxy's access log): one object a
 * line on stderr, `{"ts":...,"level":...,"msg":...,<members>}`, written
 * with one writev(2) like every other line. members is JSON text of the
 * object's members (`"k":1,"s":"v"`, strings written by log_json_str), or
 * empty. Lines the other calls write start with `ts=`, these with `{`. */
void log_json(enum log_level level, const char *msg, const char *members, size_t members_len);

/* The most log_json_str writes for n input bytes, NUL included: every byte
 * may become a six-byte escape, plus the quotes. */
#define LOG_JSON_STR_MAX(n) (6 * (size_t)(n) + 3)
/* Writes s[0..len) as a JSON string with its quotes into out and returns
 * its length (out is NUL-terminated). The output is ASCII: '"', '\\' and
 * control characters (and DEL) are escaped, valid UTF-8 beyond ASCII
 * becomes \uXXXX (a surrogate pair past U+FFFF), and each byte that is not
 * part of a valid UTF-8 sequence (overlong, surrogate, past U+10FFFF, cut)
 * becomes \ufffd, so bytes from a request can neither break the line nor
 * make it invalid JSON. When outlen is short of LOG_JSON_STR_MAX(len) the
 * string is cut at a character boundary and still closed; outlen >= 3. */
size_t log_json_str(char *out, size_t outlen, const char *s, size_t len);

#define log_debug(msg, ...) log_event(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_event(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_event(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_event(LOG_ERROR, msg, __VA_ARGS__)

#endif
