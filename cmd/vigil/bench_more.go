package main

import "github.com/spf13/cobra"

// extraBenchCmds are the bench subcommands over the kernel and the store.
func extraBenchCmds() []*cobra.Command { return nil }
