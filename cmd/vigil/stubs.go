package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Temporary until the stages land.
func newUpCmd() *cobra.Command {
	return &cobra.Command{Use: "up", RunE: func(cmd *cobra.Command, _ []string) error {
		if _, _, err := setup(cmd); err != nil {
			return err
		}
		return errors.New("not wired")
	}}
}
