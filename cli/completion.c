/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl completion bash|zsh`: a completion script for the shell, of
 * weftctl's commands and each command's flags (file names where a flag
 * takes a file, contexts from the kubeconfig for --context). The flag lists
 * are written out here and checked against every command's --help by
 * tests/e2e/test_cli.py, so a new flag cannot be forgotten unnoticed. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

#define CLUSTER_FLAGS "--kubeconfig --context -n --namespace"

static const struct {
    const char *cmd, *flags;
} table[] = {
    {"inject", "-f --filename --config --templates --namespace-annotations --from-cluster --kubeconfig --context -h --help"},
    {"uninject", "-f --filename --resolved-probes -h --help"},
    {"version", "--client " CLUSTER_FLAGS " -h --help"},
    {"kubeconfig", "--contexts " CLUSTER_FLAGS " -h --help"},
    {"check", "--pre -o --output --strict --snapshot --dump-snapshot --now " CLUSTER_FLAGS " -h --help"},
    {"install", "--set --manifests --kustomized --certs-dir -h --help"},
    {"authz", "why"},
    {"authz why", "--from --to --method --path --snapshot --dump-snapshot " CLUSTER_FLAGS " -h --help"},
    {"stat", "pod deploy ns -A --all-namespaces -w --watch --count --snapshot --previous --dump-snapshot "
             "--prometheus --prometheus-ca --window --at " CLUSTER_FLAGS " -h --help"},
    {"completion", "bash zsh"},
};

/* Flags whose value is a file or directory. */
#define FILE_FLAGS "-f|--filename|--config|--kubeconfig|--snapshot|--previous|--kustomized|--prometheus-ca"
#define DIR_FLAGS "--templates|--manifests|--certs-dir"

static void usage(FILE *f)
{
    fprintf(f, "usage: weftctl completion bash|zsh\n"
               "\n"
               "Prints a completion script for the shell: commands, their flags, files where a flag\n"
               "takes one, and the kubeconfig's contexts for --context.\n"
               "\n"
               "  bash: source <(weftctl completion bash)       (or put it in ~/.local/share/bash-completion/completions/weftctl)\n"
               "  zsh:  source <(weftctl completion zsh)        (after compinit)\n"
               "\n"
               "Exit status: 0 done, 2 no shell or one weftctl has no script for.\n");
}

static void bash_script(void)
{
    printf("# weftctl completion for bash: source <(weftctl completion bash)\n"
           "_weftctl() {\n"
           "  local cur prev cmd i\n"
           "  cur=${COMP_WORDS[COMP_CWORD]}\n"
           "  prev=${COMP_WORDS[COMP_CWORD-1]}\n"
           "  cmd=${COMP_WORDS[1]}\n"
           "  [ \"$cmd\" = authz ] && [ \"${COMP_WORDS[2]}\" = why ] && [ $COMP_CWORD -gt 2 ] && cmd=\"authz why\"\n"
           "  if [ $COMP_CWORD -eq 1 ]; then\n"
           "    COMPREPLY=($(compgen -W \"");
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strchr(table[i].cmd, ' '))
            printf("%s ", table[i].cmd);
    printf("help\" -- \"$cur\"))\n"
           "    return\n"
           "  fi\n"
           "  case $prev in\n"
           "    " FILE_FLAGS ") COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
           "    " DIR_FLAGS ") COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n"
           "    --context) COMPREPLY=($(compgen -W \"$(weftctl kubeconfig --contexts 2>/dev/null)\" -- \"$cur\")); return ;;\n"
           "    -o|--output) COMPREPLY=($(compgen -W \"text json\" -- \"$cur\")); return ;;\n"
           "    --set) COMPREPLY=($(compgen -W \"certificates.days= certManager= webhook.replicas= mesh.\" -- \"$cur\")); "
           "compopt -o nospace 2>/dev/null; return ;;\n"
           "  esac\n"
           "  case $cmd in\n");
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        printf("    \"%s\") COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")) ;;\n", table[i].cmd, table[i].flags);
    printf("  esac\n"
           "}\n"
           "complete -F _weftctl weftctl\n");
}

static void zsh_script(void)
{
    /* bash's script through zsh's bashcompinit: one script to keep right */
    printf("# weftctl completion for zsh: source <(weftctl completion zsh), after compinit\n"
           "autoload -U +X bashcompinit && bashcompinit\n");
    bash_script();
}

int cmd_completion(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "weftctl completion: expected one shell, bash or zsh (weftctl completion --help)\n");
        return 2;
    }
    if (strcmp(argv[1], "bash") == 0)
        bash_script();
    else if (strcmp(argv[1], "zsh") == 0)
        zsh_script();
    else {
        fprintf(stderr, "weftctl completion: no completion for \"%s\": bash or zsh\n", argv[1]);
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
