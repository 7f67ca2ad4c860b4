/* SPDX-License-Identifier: Apache-2.0 */
/* jansson -> libyaml emitter events; see yamlout.h. */
#include "yamlout.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Whether a plain scalar s could read as something other than this string:
 * empty, a YAML 1.1 or 1.2 null or boolean, or anything number-like (YAML 1.1
 * times and dates like 12:30 and 2026-12-01 included). */
static int needs_quotes(const char *s)
{
    static const char *const words[] = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n",
                                        "=", "<<", NULL}; /* the last two: YAML 1.1 value and merge keys */
    if (!*s)
        return 1;
    for (const char *const *w = words; *w; w++)
        if (strcasecmp(s, *w) == 0)
            return 1;
    if (isdigit((unsigned char)s[0]) || ((s[0] == '-' || s[0] == '+' || s[0] == '.') && s[1] &&
                                         (isdigit((unsigned char)s[1]) || s[1] == '.' || s[1] == 'i' ||
                                          s[1] == 'I' || s[1] == 'n' || s[1] == 'N')))
        return 1;
    return strcasecmp(s, ".inf") == 0 || strcasecmp(s, ".nan") == 0;
}

static int write_handler(void *data, unsigned char *bytes, size_t size)
{
    return buf_append(data, bytes, size) == 0;
}

static int scalar(yaml_emitter_t *e, const char *text, size_t len, int is_string)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
    if (is_string)
        style = needs_quotes(text) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)len, 1, 1, style);
    return yaml_emitter_emit(e, &ev);
}

static int node(yaml_emitter_t *e, json_t *v)
{
    yaml_event_t ev;
    char num[64];
    const char *key;
    json_t *item;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if (!yaml_emitter_emit(e, &ev))
            return 0;
        json_object_foreach(v, key, item)
            if (!scalar(e, key, strlen(key), 1) || !node(e, item))
                return 0;
        yaml_mapping_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev);
    case JSON_ARRAY:
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
        if (!yaml_emitter_emit(e, &ev))
            return 0;
        json_array_foreach(v, i, item)
            if (!node(e, item))
                return 0;
        yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev);
    case JSON_STRING:
        return scalar(e, json_string_value(v), json_string_length(v), 1);
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return scalar(e, num, strlen(num), 0);
    case JSON_REAL:
        /* The fewest digits (up to 17, always enough) that read back as the
         * same double; "1" would read back as an integer, so 1.0. */
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(num, sizeof num, "%.*g", digits, json_real_value(v));
            if (strtod(num, NULL) == json_real_value(v))
                break;
        }
        if (!strpbrk(num, ".eEn"))
            snprintf(num + strlen(num), sizeof num - strlen(num), ".0");
        return scalar(e, num, strlen(num), 0);
    case JSON_TRUE: return scalar(e, "true", 4, 0);
    case JSON_FALSE: return scalar(e, "false", 5, 0);
    case JSON_NULL: return scalar(e, "null", 4, 0);
    }
    return 0;
}

int yamlout_write(json_t *docs, struct buf *out, char *err, size_t errlen)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    size_t i;
    json_t *doc;
    int ok;
    if (!yaml_emitter_initialize(&e)) {
        snprintf(err, errlen, "cannot start the YAML emitter");
        return -EINVAL;
    }
    yaml_emitter_set_output(&e, write_handler, out);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_emitter_set_indent(&e, 2);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = yaml_emitter_emit(&e, &ev);
    json_array_foreach(docs, i, doc) {
        if (!ok)
            break;
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, i == 0);
        ok = yaml_emitter_emit(&e, &ev) && node(&e, doc);
        yaml_document_end_event_initialize(&ev, 1);
        ok = ok && yaml_emitter_emit(&e, &ev);
    }
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(&e, &ev) && yaml_emitter_flush(&e);
    if (!ok)
        snprintf(err, errlen, "cannot write YAML: %s", e.problem ? e.problem : "output too large");
    yaml_emitter_delete(&e);
    return ok ? 0 : -EINVAL;
}
