// Command sealroot is the host half of sealroot: image builder, initrd
// builder, launcher, measurement and verification tools, and the key broker.
// The command line is the public contract documented in README.md.
//
// The command tree is built by constructors, one file per command family:
// newRootCmd (this file) assembles newBrokerCmd (cmd_broker.go),
// newRegisterCmd and newWorkloadsCmd (cmd_register.go), newImageCmd
// (cmd_image.go), newInitramfsCmd (cmd_initramfs.go), newLaunchCmd and
// newRelayCmd (cmd_launch.go), newMeasureCmd (cmd_measure.go), newSimCmd
// (cmd_sim.go) and newVerifyCmd (cmd_verify.go). Each constructor binds its
// flags to a struct of its own, so every call of newRootCmd gives a tree
// that shares no state with any other; the package has no init functions
// and no package-level variables (main_test.go checks both).
//
// Logging: what a command produces goes to its standard output (or, when
// documented, as plain lines to standard error); its errors are returned and
// printed once by run as "sealroot: ...". Progress and diagnostic lines go
// through the one *slog.Logger newRootCmd builds (newLogger): text lines on
// the command's standard error at level Info. A message is a short
// lowercase phrase without values; the values are attributes whose keys are
// snake_case words the rest of the command line already uses (workload,
// tee, broker, image, volume, host_data, measurement). Info is what the
// command did, Warn what the user should look at, Debug detail not shown by
// default; errors are never logged, only returned.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCmd builds the whole sealroot command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sealroot",
		Short:         "Build, launch, attest and serve keys for confidential containers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
	})
	log := newLogger(root)
	root.AddCommand(
		newBrokerCmd(log),
		newImageCmd(log),
		newInitramfsCmd(log),
		newLaunchCmd(log),
		newRelayCmd(),
		newMeasureCmd(),
		newRegisterCmd(),
		newWorkloadsCmd(),
		newSimCmd(),
		newVerifyCmd(),
	)
	return root
}

// newLogger is the logger of the commands of root: text lines on root's
// standard error (looked up when a line is written, so SetErr after
// construction applies), level Info.
func newLogger(root *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderrOf{root}, nil))
}

// stderrOf writes to the standard error of a command at the time of writing.
type stderrOf struct{ c *cobra.Command }

func (w stderrOf) Write(p []byte) (int, error) { return w.c.ErrOrStderr().Write(p) }

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
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs sealroot with args on a command tree of its own and returns the
// exit status. Errors are printed to stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "sealroot:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "sealroot:", err)
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
