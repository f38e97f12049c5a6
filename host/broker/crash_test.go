package broker

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// childEnv makes the test binary run a broker (with the flags in
// childArgsEnv, space separated) instead of the tests: the crash and
// replica tests start real broker processes this way.
const (
	childEnv     = "SEALROOT_BROKER_TEST_CHILD"
	childArgsEnv = "SEALROOT_BROKER_TEST_ARGS"
)

// childMain is the broker process: it parses the flags exactly as
// `sealroot broker` does, prints "LISTENING <addr>" on stdout when ready,
// and serves until SIGTERM.
func childMain() int {
	var o Options
	fs := pflag.NewFlagSet("broker", pflag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse(strings.Fields(os.Getenv(childArgsEnv))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if o.Config != "" {
		if err := ApplyConfigFile(fs, o.Config); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := Run(ctx, o, os.Stderr, func(a net.Addr) { fmt.Printf("LISTENING %s\n", a) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		return 1
	}
	return 0
}
