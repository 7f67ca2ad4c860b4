/* SPDX-License-Identifier: Apache-2.0 */
/* What every weftctl command that talks to a cluster shares: the kubectl
 * flags (--kubeconfig, --context, -n/--namespace), finding the target and
 * connecting to it. The shell of kubeconfig.c and kubeclient.c. */
#ifndef WEFT_CLI_CLUSTER_H
#define WEFT_CLI_CLUSTER_H
#include <getopt.h>
#include <stdio.h>

#include "kubeclient.h"
#include "kubeconfig.h"

enum { CLUSTER_F_KUBECONFIG = 1000, CLUSTER_F_CONTEXT };

#define CLUSTER_LONG_OPTIONS                                                                                  \
    {"kubeconfig", required_argument, NULL, CLUSTER_F_KUBECONFIG},                                            \
        {"context", required_argument, NULL, CLUSTER_F_CONTEXT}, {"namespace", required_argument, NULL, 'n'}

#define CLUSTER_USAGE                                                                                         \
    "      --kubeconfig FILE        the kubeconfig (default $KUBECONFIG, a ':' list, else ~/.kube/config)\n"   \
    "      --context NAME           the kubeconfig context (default its current-context)\n"                  \
    "  -n, --namespace NS           the namespace (default the context's, else \"default\")\n"

/* 1 when c (a getopt_long answer) was one of the cluster flags, stored in o. */
int cluster_flag(int c, const char *arg, struct kubeconfig_options *o);
/* Loads the kubeconfig, reads its credentials and connects: 0, or -1 with
 * the message in err. *c is NULL on failure. */
int cluster_connect(const struct kubeconfig_options *o, struct kube_target *t, struct kubeclient **c, char *err,
                    size_t errlen);

/* A meshed pod's weft-proxy /metrics through the API server's pod proxy (its
 * weft-admin port, else 15020): a new string, or {"fetchError": why}. */
json_t *cluster_pod_metrics(struct kubeclient *c, json_t *pod);

#endif
