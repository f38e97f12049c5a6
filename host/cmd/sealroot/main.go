// Command sealroot is the host half of sealroot: image builder, initrd
// builder, launcher, measurement and verification tools, and the key broker.
// The command line is the public contract documented in README.md.
//
// Each subcommand lives in its own cmd_*.go file and registers itself with
// rootCmd in an init function.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "sealroot",
	Short:         "Build, launch, attest and serve keys for confidential containers",
	SilenceUsage:  true,
	SilenceErrors: true,
}

// exitError carries a specific process exit status through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// withStatus wraps err so that sealroot exits with code. An err that
// already carries a status (a usage error) keeps its own.
func withStatus(code int, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: code, err: err}
}

// usageError marks err as a usage error (exit status 2).
func usageError(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

func main() {
	rootCmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
	})
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "sealroot:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "sealroot:", err)
	// cobra's own argument and unknown-command errors are usage errors.
	if isCobraUsage(err) {
		return 2
	}
	return 1
}

func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires at least", "requires at most", "required flag", "invalid argument", "if any flags in the group"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
