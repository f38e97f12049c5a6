package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

type launchFlags struct {
	kernel, initrd, disk, dataDisk string
	tee, simDir, broker            string
	cpus, memory                   int
	appendArgs                     string
	timeout                        time.Duration
	events                         string
	accel                          string
	qemu                           string
	timeline                       bool
	machine                        string

	// teeFlags are the flags for SEV-SNP and TDX (and --dry-run),
	// cmd_launch_tee.go.
	teeFlags launchTEEFlags
}

// newLaunchCmd builds `sealroot launch`.
func newLaunchCmd(log *slog.Logger) *cobra.Command {
	var f launchFlags
	c := &cobra.Command{
		Use:   "launch --kernel FILE --initrd FILE --disk FILE",
		Short: "Boot a workload disk under QEMU and exit with the workload's status",
		Long: `Boot a confidential workload disk under QEMU. The guest console goes to stdout.
The exit status is the workload's (0-255; 128+N for a signal) when it ran. When it could not run,
the status is one of:
  200 launch failed          201 guest stopped without a status   202 timeout
  203 root disk not found    204 invalid disk config               205 attestation evidence unavailable
  206 broker refused         207 unlock failed                     208 mount or switch_root failed
  209 invalid workload config 210 interrupted                      211 kernel module load failed
  212 early setup failed        213 root volume not the one the config binds
  214 sealing the TEE failed
A workload program that does not exist exits 127; one that cannot be executed, 126.`,
		Example: `  sealroot launch --kernel vmlinuz --initrd initrd.cpio.gz --disk out/disk.img
  sealroot launch --kernel vmlinuz --initrd initrd.cpio.gz --disk out/disk.img \
      --tee sim --sim-dir ~/.sealroot/sim --broker http://127.0.0.1:8000 --events events.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runLaunch(cmd, log, &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.kernel, "kernel", "", "guest kernel (bzImage)")
	fl.StringVar(&f.initrd, "initrd", "", "sealroot initrd")
	fl.StringVar(&f.disk, "disk", "", "workload disk (disk.img), the guest's /dev/vda")
	fl.StringVar(&f.dataDisk, "data-disk", "", "optional data disk, the guest's /dev/vdb")
	fl.StringVar(&f.tee, "tee", "none", "TEE the host provides: none, sim, snp or tdx")
	fl.StringVar(&f.simDir, "sim-dir", "", "simulated secure processor keys (sealroot sim init)")
	fl.StringVar(&f.broker, "broker", "", "broker URL on this host (loopback) that the guest's attestation_url is forwarded to: the broker's --listen, never its --admin-listen")
	fl.IntVar(&f.cpus, "cpus", 0, "vCPUs (default: the disk config's)")
	fl.IntVar(&f.memory, "memory", 0, "memory in MiB (default: the disk config's)")
	fl.StringVar(&f.appendArgs, "append", "", "extra kernel command line arguments")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "stop the VM after this long (0: never)")
	fl.StringVar(&f.events, "events", "", "write the guest's structured events to FILE as JSON lines")
	fl.StringVar(&f.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	fl.StringVar(&f.qemu, "qemu", "qemu-system-x86_64", "QEMU binary")
	fl.StringVar(&f.machine, "machine", launch.MachinePC, "QEMU machine: pc, or microvm (virtio-mmio only, console on hvc0; for a kernel with everything built in, see make kernel-krunfw)")
	fl.BoolVar(&f.timeline, "timeline", false, "print the guest's boot timeline (per-phase durations) on stderr at the end")
	f.teeFlags.register(fl)
	return c
}

// newRelayCmd builds the hidden `sealroot relay`, which a launch's QEMU
// runs for each guest connection to the broker (launch.Forward).
func newRelayCmd() *cobra.Command {
	var relayMax int
	var relaySlots string
	relayCmd := &cobra.Command{
		Use:    "relay [--max-conns N --slot-dir DIR] HOST:PORT",
		Short:  "Copy stdin/stdout to a loopback TCP address (used by QEMU guestfwd)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// QEMU wires this process's output into the guest's TCP
			// stream: an error must close the stream, never be printed.
			if relaySlots != "" {
				release, err := launch.AcquireRelaySlot(relaySlots, relayMax)
				if err != nil {
					return withStatus(1, nil)
				}
				defer release()
			}
			if err := launch.Relay(args[0], cmd.InOrStdin(), cmd.OutOrStdout()); err != nil {
				return withStatus(1, nil)
			}
			return nil
		},
	}
	relayCmd.Flags().IntVar(&relayMax, "max-conns", launch.DefaultRelayConns, "concurrent relays allowed per --slot-dir")
	relayCmd.Flags().StringVar(&relaySlots, "slot-dir", "", "directory of the launch's relay slots (the cap is off without it)")
	return relayCmd
}

func runLaunch(cmd *cobra.Command, log *slog.Logger, f *launchFlags) error {
	fail := func(err error) error { return withStatus(event.StatusLaunchFailed, err) }
	if f.kernel == "" || f.initrd == "" || f.disk == "" {
		return usageError("--kernel, --initrd and --disk are required")
	}
	if err := launch.CheckMachine(f.machine); err != nil {
		return usageError("--machine: %v", err)
	}
	cfg, rawConfig, err := diskConfig(f.disk)
	if err != nil {
		return fail(fmt.Errorf("--disk: %w", err))
	}
	o := launch.Options{
		QEMU: f.qemu, Kernel: f.kernel, Initrd: f.initrd, Disk: f.disk, DataDisk: f.dataDisk,
		CPUs: f.cpus, MemoryMiB: f.memory, Append: f.appendArgs, Timeout: f.timeout, Accel: f.accel,
		Machine: f.machine,
		Console: cmd.OutOrStdout(), Logger: log,
	}
	if o.CPUs == 0 {
		o.CPUs = cfg.CPUs
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = cfg.RAMMiB
	}
	if err := checkLaunchTEE(f, cfg.TEE); err != nil {
		return err
	}
	if err := preflightLaunch(f, cfg, o.MemoryMiB); err != nil {
		return err
	}
	switch f.tee {
	case "sim":
		srv, err := newSimServer(f, &o, rawConfig)
		if err != nil {
			return fail(err)
		}
		o.Sim = srv
	case "snp", "tdx":
		t, err := newTEE(&f.teeFlags, f.tee, rawConfig)
		if err != nil {
			return err
		}
		o.TEE = t
	}
	if f.broker != "" {
		fw, err := forwardFor(cfg, f.broker)
		if err != nil {
			return fail(err)
		}
		if !f.teeFlags.dryRun { // a dry run starts nothing: the broker may come later
			if err := checkBrokerUp(f.broker, fw); err != nil {
				return err
			}
		}
		o.Forward = fw
	}
	if f.teeFlags.dryRun {
		argv, err := launch.DryRun(o)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), launch.ShellLine(argv))
		return nil
	}
	if f.events != "" {
		ef, err := os.Create(f.events)
		if err != nil {
			return fail(err)
		}
		defer ef.Close()
		o.Events = ef
	}
	for _, fp := range [][2]string{{"--kernel", f.kernel}, {"--initrd", f.initrd}} {
		if _, err := os.Stat(fp[1]); err != nil {
			return fail(fmt.Errorf("%s: %w", fp[0], err))
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := launch.Run(ctx, o)
	if err != nil {
		return fail(err)
	}
	if f.timeline {
		printTimeline(cmd.ErrOrStderr(), res)
	}
	if res.Status >= 200 && res.Reason != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "sealroot launch: %s (status %d: %s)\n", res.Reason, res.Status, event.StatusText(res.Status))
	} else if res.Status >= 200 {
		fmt.Fprintf(cmd.ErrOrStderr(), "sealroot launch: status %d: %s\n", res.Status, event.StatusText(res.Status))
	}
	if res.Status != 0 {
		return withStatus(res.Status, nil)
	}
	return nil
}

// diskConfig reads the KRUN footer config of a disk image, parsed and as
// raw bytes (whose SHA-256 is the launch's HOST_DATA).
func diskConfig(path string) (*diskconfig.Config, []byte, error) {
	raw, err := diskconfig.ReadFooterFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := diskconfig.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, raw, nil
}

// forwardFor maps the disk's attestation_url (an address inside QEMU's user
// network) to the broker on this host's loopback.
func forwardFor(cfg *diskconfig.Config, broker string) (*launch.Forward, error) {
	bu, err := url.Parse(broker)
	if err != nil || bu.Host == "" {
		return nil, usageError("--broker %q: want a URL like http://127.0.0.1:8000", broker)
	}
	if cfg.AttestationURL == "" {
		return nil, usageError("--broker given but the disk config has no attestation_url (build the image with --attestation-url)")
	}
	gu, err := url.Parse(cfg.AttestationURL)
	if err != nil {
		return nil, err
	}
	if gu.Scheme != "http" && gu.Scheme != "https" {
		return nil, fmt.Errorf("attestation_url %s: only http(s) can be forwarded", cfg.AttestationURL)
	}
	gport := gu.Port()
	if gport == "" {
		gport = map[string]string{"http": "80", "https": "443"}[gu.Scheme]
	}
	if ip := net.ParseIP(gu.Hostname()); ip == nil || ip.To4() == nil {
		return nil, fmt.Errorf("attestation_url %s: the host must be an IPv4 address in QEMU's user network (e.g. 10.0.2.100)", cfg.AttestationURL)
	}
	bhost := bu.Hostname()
	if bhost == "localhost" {
		bhost = "127.0.0.1"
	}
	if ip := net.ParseIP(bhost); ip == nil || !ip.IsLoopback() {
		return nil, usageError("--broker %s: the broker must be on this host's loopback (127.0.0.1, ::1 or localhost): the guest may reach nothing else", broker)
	}
	bport := bu.Port()
	if bport == "" {
		bport = map[string]string{"http": "80", "https": "443"}[bu.Scheme]
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return &launch.Forward{
		GuestAddr:    net.JoinHostPort(gu.Hostname(), gport),
		BrokerAddr:   net.JoinHostPort(bhost, bport),
		RelayCommand: []string{self, "relay"},
	}, nil
}

// printTimeline prints the guest's phases with their durations.
func printTimeline(w io.Writer, res *launch.Result) {
	fmt.Fprintf(w, "boot timeline (guest clock, from PID 1 start; accel %s):\n", res.Accel)
	for _, e := range res.Events {
		switch e.Kind {
		case event.KindPhase:
			fmt.Fprintf(w, "  %-11s %8.1f ms   done at %8.1f ms\n", e.Phase, e.Millis, e.SinceStartMillis)
		case event.KindError:
			fmt.Fprintf(w, "  %-11s   FAILED     at %8.1f ms: %s\n", e.Phase, e.SinceStartMillis, e.Message)
		}
	}
	fmt.Fprintf(w, "  host wall time %.2f s, exit status %d\n", res.Duration.Seconds(), res.Status)
}

// checkLaunchTEE vets --tee and the flags that go with it against the
// disk's own tee.
func checkLaunchTEE(f *launchFlags, diskTEE string) error {
	switch f.tee {
	case "none":
		if f.simDir != "" {
			return usageError("--sim-dir needs --tee sim")
		}
	case "sim":
		if f.simDir == "" {
			return usageError("--tee sim needs --sim-dir DIR (create one with `sealroot sim init --dir DIR`)")
		}
	case "snp", "tdx":
		return checkTEELaunch(f, diskTEE)
	default:
		return usageError("--tee %q: want none (the default), sim, snp or tdx", f.tee)
	}
	return nil
}
