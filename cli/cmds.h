/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl's commands, each in its own file, called by main.c with argv
 * starting at the command's name. Each returns the process's exit status. */
#ifndef WEFT_CLI_CMDS_H
#define WEFT_CLI_CMDS_H

int cmd_kubeconfig(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_authz(int argc, char **argv);
int cmd_completion(int argc, char **argv);
int cmd_stat(int argc, char **argv);

#endif
