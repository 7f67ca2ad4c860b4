/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: weft-proxy's configuration parsers on arbitrary text:
 * WEFT_APP_PROBES JSON (proxy/probes.c), WEFT_ALLOW_FROM (proxy/authz.c) and
 * the whole config_load with the input as one setting's value (the first
 * byte picks which). Leaks and overflows are what ASan looks for. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_var;
static const char *fuzz_value;

static const char *fuzz_getenv(void *ctx, const char *name)
{
    (void)ctx;
    if (strcmp(name, fuzz_var) == 0)
        return fuzz_value;
    if (strcmp(name, "WEFT_POD_NAMESPACE") == 0)
        return "shop";
    if (strcmp(name, "WEFT_CERT") == 0 || strcmp(name, "WEFT_KEY") == 0)
        return "/nonexistent";
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *vars[] = {"WEFT_APP_PROBES", "WEFT_ALLOW_FROM", "WEFT_MESH_NETWORKS",
                                 "WEFT_OUTBOUND_IDENTITIES", "WEFT_INBOUND_POLICY", "WEFT_TRUST_DOMAIN"};
    if (size == 0 || size > 70000)
        return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    char err[512];

    struct probes ps;
    if (probes_parse(s, strlen(s), &ps, err, sizeof err) == 0) {
        char req[8192];
        for (size_t i = 0; i < ps.n; i++)
            if (ps.items[i].type == PROBE_HTTP)
                probes_format_request(&ps.items[i], "198.18.0.2:8080", req, sizeof req);
        probes_free(&ps);
    }
    struct authz_rule rules[AUTHZ_MAX_RULES];
    size_t n;
    authz_parse_allow_from(s, rules, &n, err, sizeof err);

    fuzz_var = vars[data[0] % (sizeof vars / sizeof *vars)];
    fuzz_value = s;
    struct proxy_config cfg;
    int help;
    char *argv[] = {"weft-proxy", NULL};
    if (config_load(&cfg, 1, argv, fuzz_getenv, NULL, &help, err, sizeof err) == 0)
        config_free(&cfg);
    free(s);
    return 0;
}
