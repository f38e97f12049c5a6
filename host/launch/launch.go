// Package launch runs a sealroot guest under QEMU and returns the
// workload's exit status.
//
// The launcher owns the VM's whole life: it picks the accelerator (KVM only
// when the CPU has vmx/svm and a probe boot finishes; TCG otherwise, never a
// hang), listens on the host end of the guest's event port before QEMU
// starts (QEMU connects as the client), streams the serial console to the
// caller, serves the simulated secure processor when asked, forwards the
// guest's broker address to a loopback broker through restricted user
// networking, enforces the timeout, and tears QEMU and its helpers down on
// every path. The status comes from the guest's exit event, else from the
// final console line, else it is a documented boot-failure status.
package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sealroot/sealroot/attest/simport"
	"github.com/sealroot/sealroot/wire/event"
)

// SimServer answers the guest's report requests on the simulated TEE port
// (host/verify/sim.Server implements it).
type SimServer interface {
	Serve(ctx context.Context, rw io.ReadWriter) error
}

// SimPortName is the virtio-serial port of the simulated secure processor,
// the name the guest looks for.
const SimPortName = simport.PortName

// Options describe one launch.
type Options struct {
	QEMU     string // default qemu-system-x86_64
	Kernel   string
	Initrd   string
	Disk     string
	DataDisk string
	// ExtraDisks follow the data disk (/dev/vdc, /dev/vdd, ...).
	ExtraDisks []string
	// RootDiskInterface is how the root disk is attached: "virtio" (the
	// default, /dev/vda) or "ide" (for tests of a guest without /dev/vda).
	RootDiskInterface string
	CPUs              int
	MemoryMiB         int
	// Append is added to the kernel command line after BaseCmdline.
	Append  string
	Timeout time.Duration
	// Accel is auto, kvm or tcg.
	Accel string
	// Machine is MachinePC (the default) or MachineMicrovm (machine.go).
	Machine string

	// TEE, when set, starts the guest in SEV-SNP or TDX (tee.go): KVM,
	// the TEE's firmware and guest object. Run checks QEMU and the host
	// first.
	TEE *TEE

	// Sim, when set, is served on the simulated TEE port.
	Sim SimServer
	// Forward connects the guest's broker address (GuestAddr, host:port
	// inside QEMU's user network) to BrokerAddr on 127.0.0.1, using
	// RelayCommand (argv; the launcher appends the target address).
	Forward *Forward

	// Console and Events are the launch's output, not logs: the guest's
	// serial console as it comes, and the guest's events as JSON lines.
	Console io.Writer         // guest console; default os.Stdout
	Events  io.Writer         // JSON lines of guest events; may be nil
	OnEvent func(event.Event) // called for each event; may be nil
	// Logger receives the launcher's own records (docs/design.md,
	// "Logging"); nil discards them.
	Logger *slog.Logger
}

// Forward is a guestfwd rule.
type Forward struct {
	GuestAddr  string // e.g. 10.0.2.100:8000
	BrokerAddr string // must be a loopback host:port: the broker's key listener, never --admin-listen
	// RelayCommand is `sealroot relay`'s argv; the launcher appends
	// --max-conns N --slot-dir DIR and the target address (relaycap.go).
	RelayCommand []string
	// MaxConns caps the guest's concurrent connections (0:
	// DefaultRelayConns).
	MaxConns int
}

// Result is the outcome of a launch.
type Result struct {
	Status int
	// Reason explains a status >= 200.
	Reason   string
	Accel    string
	Cmdline  string
	Events   []event.Event
	Duration time.Duration
}

// BaseCmdline is the kernel command line every launch starts with. It is
// part of what the simulated TEE measures.
const BaseCmdline = "console=ttyS0 panic=-1 quiet"

// Cmdline returns the kernel command line for append.
func Cmdline(appendArgs string) string {
	if s := strings.TrimSpace(appendArgs); s != "" {
		return BaseCmdline + " " + s
	}
	return BaseCmdline
}

func (o *Options) defaults() error {
	if o.QEMU == "" {
		o.QEMU = "qemu-system-x86_64"
	}
	if o.CPUs == 0 {
		o.CPUs = 1
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 512
	}
	if o.Accel == "" {
		o.Accel = "auto"
	}
	if o.Console == nil {
		o.Console = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	files := []struct{ what, path string }{{"kernel", o.Kernel}, {"initrd", o.Initrd}, {"disk", o.Disk}, {"data disk", o.DataDisk}}
	for _, d := range o.ExtraDisks {
		files = append(files, struct{ what, path string }{"extra disk", d})
	}
	if err := CheckMachine(o.Machine); err != nil {
		return err
	}
	if o.Machine == "" {
		o.Machine = MachinePC
	}
	switch o.RootDiskInterface {
	case "":
		o.RootDiskInterface = "virtio"
	case "virtio", "ide":
	default:
		return fmt.Errorf("root disk interface %q is not virtio or ide", o.RootDiskInterface)
	}
	for _, f := range files {
		if f.path == "" {
			if f.what == "data disk" {
				continue
			}
			return fmt.Errorf("no %s given", f.what)
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.what, err)
		}
		if strings.ContainsAny(f.path, ",\n") {
			return fmt.Errorf("%s path %q contains a comma or newline, which QEMU options cannot carry", f.what, f.path)
		}
	}
	if o.CPUs < 1 || o.CPUs > 255 {
		return fmt.Errorf("cpus %d outside 1-255", o.CPUs)
	}
	if o.MemoryMiB < 64 {
		return fmt.Errorf("memory %d MiB is below the 64 MiB a guest needs", o.MemoryMiB)
	}
	switch o.Accel {
	case "auto", "kvm", "tcg":
	default:
		return fmt.Errorf("accel %q is not auto, kvm or tcg", o.Accel)
	}
	if o.Forward != nil {
		h, _, err := net.SplitHostPort(o.Forward.BrokerAddr)
		if err != nil {
			return fmt.Errorf("broker address: %w", err)
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("broker address %s is not a loopback address: the guest may reach only the local broker", o.Forward.BrokerAddr)
		}
		if _, _, err := net.SplitHostPort(o.Forward.GuestAddr); err != nil {
			return fmt.Errorf("guest broker address: %w", err)
		}
		if len(o.Forward.RelayCommand) == 0 {
			return errors.New("no relay command for the broker forward")
		}
	}
	return nil
}

// Run launches the VM and waits for it. A non-nil error means the VM could
// not be started at all (Result.Status is then StatusLaunchFailed).
func Run(ctx context.Context, o Options) (*Result, error) {
	t0 := time.Now()
	res := &Result{Status: event.StatusLaunchFailed}
	if err := o.defaults(); err != nil {
		res.Reason = err.Error()
		return res, err
	}
	accel, err := "kvm", error(nil)
	if o.TEE != nil {
		err = Host{}.Preflight(ctx, o.QEMU, o.TEE.Kind)
		if err == nil {
			err = o.TEE.check()
		}
	} else {
		accel, err = ChooseAccel(ctx, o.Accel, o.QEMU, o.Kernel)
	}
	if err != nil {
		res.Reason = err.Error()
		return res, err
	}
	res.Accel = accel
	res.Cmdline = MachineCmdline(o.Machine, o.Append)

	dir, err := os.MkdirTemp("", "sealroot-launch-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	hostLn, err := net.Listen("unix", filepath.Join(dir, "host.sock"))
	if err != nil {
		return res, fmt.Errorf("listening for the guest event port: %w", err)
	}
	defer hostLn.Close()
	var simLn net.Listener
	if o.Sim != nil {
		if simLn, err = net.Listen("unix", filepath.Join(dir, "sim.sock")); err != nil {
			return res, fmt.Errorf("listening for the simulated TEE port: %w", err)
		}
		defer simLn.Close()
	}

	slotDir := filepath.Join(dir, "relay-slots")
	if err := os.Mkdir(slotDir, 0o700); err != nil {
		return res, err
	}
	args, err := qemuArgs(&o, accel, res.Cmdline, hostLn.Addr().String(), addrOf(simLn), slotDir)
	if err != nil {
		res.Reason = err.Error()
		return res, err
	}
	runCtx := ctx
	var cancel context.CancelFunc = func() {}
	if o.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, o.Timeout)
	}
	defer cancel()

	cmd := exec.Command(o.QEMU, args...)
	cmd.Stdin = nil
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		res.Reason = fmt.Sprintf("starting %s: %v", o.QEMU, err)
		return res, errors.New(res.Reason)
	}
	o.Logger.Debug("qemu started", "pid", cmd.Process.Pid, "qemu", o.QEMU, "accel", accel, "machine", o.Machine)
	// From here on, QEMU and everything it spawned (guestfwd relays) die
	// with this function.
	killed := make(chan struct{})
	stopOnce := sync.Once{}
	stop := func() {
		stopOnce.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			close(killed)
		})
	}
	defer stop()

	var wg sync.WaitGroup
	evs := &eventLog{w: o.Events, on: o.OnEvent}
	wg.Add(1)
	go func() { defer wg.Done(); acceptEvents(hostLn, evs) }()
	if simLn != nil {
		wg.Add(1)
		go func() { defer wg.Done(); serveSim(runCtx, simLn, o.Sim, o.Logger) }()
	}
	consoleStatus := -1
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		consoleStatus = copyConsole(o.Console, stdout)
	}()

	waitErr := make(chan error, 1)
	go func() {
		<-consoleDone
		waitErr <- cmd.Wait()
	}()
	var exitErr error
	select {
	case exitErr = <-waitErr:
	case <-runCtx.Done():
		stop()
		exitErr = <-waitErr
	}
	hostLn.Close()
	if simLn != nil {
		simLn.Close()
	}
	evs.closeConns()
	wg.Wait()

	if exitErr != nil {
		o.Logger.Debug("qemu exited", "wall_ms", time.Since(t0).Milliseconds(), "err", exitErr)
	} else {
		o.Logger.Debug("qemu exited", "wall_ms", time.Since(t0).Milliseconds())
	}
	res.Events = evs.all()
	res.Duration = time.Since(t0)
	final, ok := evs.final()
	switch {
	case ok:
		res.Status = final
	case consoleStatus >= 0:
		res.Status = consoleStatus
	case errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		res.Status = event.StatusTimeout
		res.Reason = fmt.Sprintf("no exit status within %s; the VM was stopped", o.Timeout)
	case ctx.Err() != nil:
		res.Status = event.StatusInterrupted
		res.Reason = "interrupted; the VM was stopped"
	default:
		res.Status = event.StatusBootFailed
		res.Reason = "the guest stopped without reporting an exit status"
		if e := lastError(res.Events); e != "" {
			res.Reason += " (last error: " + e + ")"
		}
		if s := strings.TrimSpace(stderr.String()); s != "" {
			res.Reason += "; qemu: " + lastLines(s, 3)
		} else if exitErr != nil {
			res.Reason += "; qemu: " + exitErr.Error()
		}
	}
	return res, nil
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// qemuOpt escapes a value for QEMU's option syntax (commas double).
func qemuOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func qemuArgs(o *Options, accel, cmdline, hostSock, simSock, slotDir string) ([]string, error) {
	// The guest needs a seeded CRNG before it can make its attestation
	// key: on a CPU without RDRAND, getrandom() waits about a second
	// for jitter entropy. TCG emulates RDRAND (host randomness), and the
	// kernel trusts the CPU's RNG as it does on SNP and TDX hardware.
	cpu := "qemu64,+rdrand"
	if accel == "kvm" {
		cpu = "host"
	}
	if o.Machine == MachineMicrovm {
		if o.TEE != nil {
			return nil, fmt.Errorf("the %s machine cannot start a %s guest: SNP and TDX launches use the %s machine", MachineMicrovm, o.TEE.Kind, MachinePC)
		}
		return microvmArgs(o, accel, cpu, cmdline, hostSock, simSock, slotDir)
	}
	a := []string{
		"-accel", accel,
		"-cpu", cpu,
		"-m", strconv.Itoa(o.MemoryMiB),
		"-smp", strconv.Itoa(o.CPUs),
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none",
		"-chardev", "stdio,id=con,signal=off",
		"-serial", "chardev:con",
		"-monitor", "none",
		"-kernel", o.Kernel,
		"-initrd", o.Initrd,
		"-append", cmdline,
		"-drive", "file=" + qemuOpt(o.Disk) + ",if=" + o.RootDiskInterface + ",format=raw,cache=unsafe",
	}
	for _, d := range append([]string{o.DataDisk}, o.ExtraDisks...) {
		if d != "" {
			a = append(a, "-drive", "file="+qemuOpt(d)+",if=virtio,format=raw,cache=unsafe")
		}
	}
	a = append(a, "-device", "virtio-serial-pci,id=vser")
	a = hostPorts(a, hostSock, simSock)
	if o.Forward != nil {
		relay := relayArgv(o.Forward, slotDir)
		a = append(a, "-nic", "user,model=virtio-net-pci,restrict=on,guestfwd=tcp:"+
			qemuOpt(o.Forward.GuestAddr)+"-cmd:"+qemuOpt(shellJoin(relay)))
	} else {
		a = append(a, "-nic", "none")
	}
	if o.TEE != nil {
		a = o.TEE.teeArgs(a, o.MemoryMiB)
	}
	return a, nil
}

// hostPorts adds the virtio-serial ports on bus vser.0 that the launcher
// serves: the event channel and, when simSock is set, the simulated TEE.
func hostPorts(a []string, hostSock, simSock string) []string {
	a = append(a,
		"-chardev", "socket,id=host,path="+qemuOpt(hostSock),
		"-device", "virtserialport,bus=vser.0,chardev=host,name="+event.PortName,
	)
	if simSock != "" {
		a = append(a,
			"-chardev", "socket,id=sim,path="+qemuOpt(simSock),
			"-device", "virtserialport,bus=vser.0,chardev=sim,name="+SimPortName,
		)
	}
	return a
}

// shellJoin quotes argv for /bin/sh (QEMU runs guestfwd commands with it).
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, s := range argv {
		q[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// copyConsole streams the console and returns the status of a final
// console line, or -1.
func copyConsole(w io.Writer, r io.Reader) int {
	status := -1
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			io.WriteString(w, line)
			if s, ok := event.ParseConsoleLine(line); ok {
				status = s
			}
		}
		if err != nil {
			return status
		}
	}
}

type eventLog struct {
	mu    sync.Mutex
	w     io.Writer
	on    func(event.Event)
	evs   []event.Event
	conns []net.Conn
}

func (l *eventLog) add(e event.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	if l.w != nil {
		_, _ = l.w.Write(e.Marshal()) // the operator's copy; the event is kept in l.evs either way
	}
	l.mu.Unlock()
	if l.on != nil {
		l.on(e)
	}
}

func (l *eventLog) track(c net.Conn) {
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.mu.Unlock()
}

func (l *eventLog) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

func (l *eventLog) all() []event.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event.Event(nil), l.evs...)
}

func (l *eventLog) final() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.evs) - 1; i >= 0; i-- {
		if l.evs[i].Kind == event.KindExit {
			return l.evs[i].Status, true
		}
	}
	return 0, false
}

func acceptEvents(ln net.Listener, l *eventLog) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		l.track(c)
		s := bufio.NewScanner(c)
		s.Buffer(make([]byte, 4096), event.MaxLine)
		for s.Scan() {
			if e, err := event.Parse(s.Bytes()); err == nil {
				l.add(e)
			}
		}
		c.Close()
	}
}

func serveSim(ctx context.Context, ln net.Listener, srv SimServer, log *slog.Logger) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			<-ctx.Done()
			c.Close()
		}()
		if err := srv.Serve(ctx, c); err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			log.Warn("serving the simulated TEE", "err", err)
		}
		c.Close()
	}
}

func lastError(evs []event.Event) string {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == event.KindError {
			return evs[i].Phase + ": " + evs[i].Message
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	_, _ = l.w.Write(q) // into a strings.Builder, which cannot fail
	return len(p), nil
}
