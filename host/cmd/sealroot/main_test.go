package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// runCLI runs sealroot with args as a user would, in this process, and
// returns the exit status, stdout and stderr. Cobra commands are package
// globals that keep flag values between runs, so the flags of the command
// args name and of its parents are reset to their defaults first. Stderr
// holds everything written there, by cobra and by run, which prints its
// error to os.Stderr itself, in the order it was written.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	c, _, err := rootCmd.Find(args)
	if err != nil {
		t.Fatalf("finding the command of %q: %v", args, err)
	}
	for p := c; p != nil; p = p.Parent() {
		resetFlags(p.Flags())
		resetFlags(p.PersistentFlags())
	}
	errFile, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	var out strings.Builder
	saved := os.Stderr
	os.Stderr = errFile
	rootCmd.SetOut(&out)
	rootCmd.SetErr(errFile)
	func() {
		defer func() {
			rootCmd.SetOut(nil)
			rootCmd.SetErr(nil)
			os.Stderr = saved
		}()
		code = run(args)
	}()
	b, err := os.ReadFile(errFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), string(b)
}

// resetFlags sets every flag of fs back to its default and unchanged.
func resetFlags(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			sv.Replace(nil)
		} else {
			f.Value.Set(f.DefValue)
		}
		f.Changed = false
	})
}
