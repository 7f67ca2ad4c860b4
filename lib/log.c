/* SPDX-License-Identifier: Apache-2.0 */
/* logfmt lines on stderr, and JSON lines for consumers that parse them (the
 * access log), each written with one write(2) or writev(2) so lines from
 * several threads or processes never interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

static enum log_level current_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_enabled(enum log_level level)
{
    return level >= current_level;
}

void log_event(enum log_level level, const char *msg, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], msg);
    if (n < 0 || (size_t)n >= sizeof line)
        n = (int)sizeof line - 2;
    if (fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m < (int)(sizeof line - (size_t)n - 1) ? m : (int)(sizeof line - (size_t)n - 2);
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

char *log_clean(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
            *p = '?';
    return s;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when s[0] does not
 * start one (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF);
 * *cp gets the code point. */
static size_t log_utf8(const unsigned char *s, size_t len, unsigned *cp)
{
    unsigned c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
        c &= 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    c = (c << 6) | (s[1] & 0x3f);
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    *cp = c;
    return n;
}

size_t log_json_str(char *out, size_t outlen, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len;) {
        char e[12];
        size_t elen = 0, used = 1;
        unsigned cp = u[i];
        if (cp == '"' || cp == '\\') {
            e[elen++] = '\\';
            e[elen++] = (char)cp;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            e[elen++] = '\\';
            e[elen++] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
        } else if (cp >= 0x20 && cp < 0x7f) {
            e[elen++] = (char)cp;
        } else {
            if (cp >= 0x80) {
                used = log_utf8(u + i, len - i, &cp);
                if (!used) {
                    used = 1;
                    cp = 0xfffd;
                }
            }
            unsigned units[2] = {cp, 0};
            size_t nu = 1;
            if (cp > 0xffff) {
                units[0] = 0xd800 + ((cp - 0x10000) >> 10);
                units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
                nu = 2;
            }
            for (size_t k = 0; k < nu; k++) {
                e[elen++] = '\\';
                e[elen++] = 'u';
                for (int sh = 12; sh >= 0; sh -= 4)
                    e[elen++] = hex[(units[k] >> sh) & 0xf];
            }
        }
        if (o + elen + 2 > outlen) /* room for the closing quote and the NUL */
            break;
        memcpy(out + o, e, elen);
        o += elen;
        i += used;
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}

void log_json(enum log_level level, const char *msg, const char *members, size_t members_len)
{
    if (!log_enabled(level))
        return;
    char head[160], m[LOG_JSON_STR_MAX(64)];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    log_json_str(m, sizeof m, msg, strlen(msg));
    int n = snprintf(head, sizeof head, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":%s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], m, members_len ? "," : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return; /* cannot happen: the message is cut to 64 bytes above */
    struct iovec iov[3] = {{head, (size_t)n}, {(void *)members, members_len}, {"}\n", 2}};
    ssize_t w = writev(STDERR_FILENO, iov, 3);
    (void)w;
}
