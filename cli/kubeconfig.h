/* SPDX-License-Identifier: Apache-2.0 */
/* kubeconfig as kubectl reads it: the files of --kubeconfig, KUBECONFIG (a
 * colon list, merged: the first file to name a cluster, user or context, or
 * to set current-context, wins) or ~/.kube/config; the context (--context or
 * current-context), its cluster (server, certificate-authority(-data),
 * insecure-skip-tls-verify, tls-server-name) and user (client-certificate /
 * client-key (-data), token / tokenFile, exec credential plugins of
 * client.authentication.k8s.io/v1 and v1beta1), and the namespace (-n, the
 * context's, else "default").
 *
 * kubeconfig_resolve() is pure (parsed documents in, a target out, file
 * references made absolute but not read) and fuzzed; kubeconfig_load() is the
 * thin shell that finds and reads the files, and kubeconfig_credentials()
 * reads the referenced files and runs an exec plugin. */
#ifndef WEFT_CLI_KUBECONFIG_H
#define WEFT_CLI_KUBECONFIG_H
#include <jansson.h>
#include <stddef.h>

#include "buf.h"

#define KUBECONFIG_MAX_BYTES (1024 * 1024)   /* one kubeconfig file; one referenced file */
#define KUBECONFIG_MAX_FILES 32              /* entries of KUBECONFIG */
#define KUBECONFIG_EXEC_MAX_OUTPUT (1024 * 1024)
#define KUBECONFIG_EXEC_TIMEOUT_SECONDS 60

/* Exit statuses of weftctl's cluster commands for a kubeconfig problem. */
struct kubeconfig_options {
    const char *kubeconfig; /* --kubeconfig: one file, which must exist; NULL: KUBECONFIG or ~/.kube/config */
    const char *context;    /* --context; NULL: current-context */
    const char *ns;         /* -n/--namespace; NULL: the context's, else "default" */
};

/* One of a certificate authority, client certificate, key: inline data
 * (decoded) or a file (absolute path); both NULL when not set. */
struct kube_blob {
    char *data;
    size_t len;
    char *file;
};

struct kube_exec {
    char *api_version;  /* client.authentication.k8s.io/v1 or v1beta1 */
    char *command;      /* as written, or absolute when it was relative to the kubeconfig */
    char **argv;        /* command then args, NULL-terminated */
    char **env;         /* "NAME=value" added to the environment, NULL-terminated */
    int interactive_always; /* interactiveMode: Always, which weftctl cannot honour */
};

struct kube_target {
    char *context, *cluster, *user; /* names, for messages */
    char *server;                   /* as written */
    char host[256];                 /* without brackets */
    char port[8];
    char *path_prefix;              /* "" or "/k8s/clusters/x": the server URL's path, no trailing '/' */
    char *tls_server_name;          /* NULL: host */
    int insecure;                   /* insecure-skip-tls-verify */
    struct kube_blob ca, cert, key;
    char *token;                    /* token, or read from token_file by kubeconfig_credentials() */
    char *token_file;
    int has_exec;
    struct kube_exec exec;
    char *ns;
    char *sources;                  /* the files read, ':'-separated, for messages */
};

struct kubeconfig_file {
    const char *path; /* for messages and to resolve relative references */
    json_t *doc;      /* borrowed; NULL: an empty file */
};

/* Picks the context and builds the target from files (in merge order).
 * 0, or -EINVAL / -ENOENT (no such context, cluster or user) with err naming
 * the file, the entry and what is wrong. On failure out is left freed. */
int kubeconfig_resolve(const struct kubeconfig_file *files, size_t n, const struct kubeconfig_options *o,
                       struct kube_target *out, char *err, size_t errlen);
void kube_target_free(struct kube_target *t);

/* Reads the kubeconfig files (o->kubeconfig, $KUBECONFIG or $HOME/.kube/config)
 * and resolves them. 0, -ENOENT (no file), -EINVAL (a file that does not
 * parse, or kubeconfig_resolve()'s errors), with err filled. */
int kubeconfig_load(const struct kubeconfig_options *o, struct kube_target *out, char *err, size_t errlen);

/* The context names of the same files, one a line into out (a name in two
 * files twice: completion does not mind). 0 or kubeconfig_load()'s errors. */
int kubeconfig_context_names(const struct kubeconfig_options *o, struct buf *out, char *err, size_t errlen);

/* Reads the certificate, key, CA and token files the target references and
 * runs its exec plugin, so that t holds data only. 0 or a negative errno
 * with err naming the file or the plugin and what went wrong. */
int kubeconfig_credentials(struct kube_target *t, char *err, size_t errlen);

/* The status of an ExecCredential a plugin printed (pure): a token, or a
 * client certificate and key (PEM). 0 or -EINVAL with err saying what is
 * missing or malformed; api_version is the one the plugin was asked for. */
int kubeconfig_exec_parse(const char *text, size_t len, const char *api_version, char **token, char **cert,
                          char **key, char *err, size_t errlen);

#endif
