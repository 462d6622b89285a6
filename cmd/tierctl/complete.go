package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion: cobra's completion command writes the scripts; the
// verbs that take a stream complete its name from the server's listing.

const completionExample = `  source <(tierctl completion bash)                         # this shell
  tierctl completion bash > /etc/bash_completion.d/tierctl   # every shell
  tierctl completion zsh > "${fpath[1]}/_tierctl"
  tierctl completion fish > ~/.config/fish/completions/tierctl.fish`

// setUpCompletion gives the completion command and its shells an example,
// and every STREAM argument and --stream flag the server's stream names.
func (a *app) setUpCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = completionExample
			for _, sh := range c.Commands() {
				sh.Example = "  tierctl completion " + sh.Name() + " > tierctl." + sh.Name()
			}
		}
		if strings.HasSuffix(strings.Fields(c.Use)[0]+" "+firstArg(c.Use), " STREAM") {
			c.ValidArgsFunction = a.completeStreams
		}
		if c.Flags().Lookup("stream") != nil {
			c.RegisterFlagCompletionFunc("stream", a.completeStreams)
		}
	}
}

// firstArg is the first word after the verb in a Use line.
func firstArg(use string) string {
	f := strings.Fields(use)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// completeStreams lists the server's streams that start with what is
// typed; a server that does not answer within a second completes nothing.
func (a *app) completeStreams(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Flags().Lookup("stream") == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp // the stream is given already
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	streams, err := a.client().Streams(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []string
	for _, s := range streams {
		if strings.HasPrefix(s.Name, toComplete) {
			out = append(out, s.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
