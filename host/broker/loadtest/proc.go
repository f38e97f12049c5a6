package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/sealroot/sealroot/host/broker"
)

// The broker runs as a process of its own, like a real one: either this
// program again in its "serve" mode, which calls broker.Run with the flags
// of `sealroot broker` (the same code host/cmd/sealroot runs), or a
// sealroot binary given by -broker-bin. With -pin (the default on two or
// more CPUs) the broker and the raw-verify child are bound to CPU 0 and
// the load generator to the other CPUs, so that the broker's capacity and
// the raw verify rate are measured on the same single core and the
// simulated guests do not take the broker's CPU.

// brokerCPU is the CPU the broker and the raw-verify child run on.
const brokerCPU = 0

// serveMain is `loadtest serve BROKER-FLAGS`: the broker in a process of
// its own. --cpuprofile writes a CPU profile of the broker alone.
func serveMain(args []string) int {
	fs := pflag.NewFlagSet("loadtest serve", pflag.ContinueOnError)
	var o broker.Options
	o.RegisterFlags(fs)
	prof := fs.String("cpuprofile", "", "write the broker's CPU profile to this file")
	memProf := fs.String("memprofile", "", "write the broker's allocation profile to this file at exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *memProf != "" {
		defer func() {
			f, err := os.Create(*memProf)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadtest serve: --memprofile:", err)
			}
		}()
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest serve: --cpuprofile:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	o.Logger = broker.JSONLogger(os.Stderr)
	if err := broker.Run(ctx, o, nil); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest serve:", err)
		return 1
	}
	return 0
}

// pinning says where the broker and the generator run.
type pinning struct {
	on        bool
	generator unix.CPUSet
}

// cpusFor is the number of CPUs the broker may use: one when pinned.
func cpusFor(p pinning) int {
	if p.on {
		return 1
	}
	return runtime.NumCPU()
}

// pinGenerator binds every thread of this process to the CPUs other than
// brokerCPU (threads made later inherit the mask of the thread that makes
// them) and sets GOMAXPROCS to their number.
func pinGenerator() (pinning, error) {
	var p pinning
	if runtime.NumCPU() < 2 {
		return p, nil
	}
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return p, fmt.Errorf("reading CPU affinity: %w", err)
	}
	if !all.IsSet(brokerCPU) || all.Count() < 2 {
		return p, fmt.Errorf("-pin needs CPU %d and one more in this process's affinity mask (%d CPUs allowed)", brokerCPU, all.Count())
	}
	p.generator = all
	p.generator.Clear(brokerCPU)
	if err := setProcessAffinity(&p.generator); err != nil {
		return p, err
	}
	runtime.GOMAXPROCS(p.generator.Count())
	p.on = true
	return p, nil
}

// setProcessAffinity binds every thread of this process to set.
func setProcessAffinity(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("binding thread %d: %w", tid, err)
		}
	}
	return nil
}

// startPinned starts cmd bound to brokerCPU (when p.on) with GOMAXPROCS 1:
// the child is forked from a thread bound to that CPU for the moment, and
// inherits its mask.
func (p pinning) startPinned(cmd *exec.Cmd) error {
	if !p.on {
		return cmd.Start()
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var one unix.CPUSet
	one.Set(brokerCPU)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return fmt.Errorf("binding to CPU %d: %w", brokerCPU, err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &p.generator); rerr != nil && err == nil {
		err = fmt.Errorf("restoring the generator's CPUs: %w", rerr)
	}
	return err
}

// cpusOf names the CPUs pid may run on, as the kernel lists them.
func cpusOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system) process pid has used.
func procCPU(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("/proc stat: utime or stime is not a number")
	}
	return time.Duration(u+s) * clockTick, nil
}

// statFields is /proc/PID/stat from its third field (the state) on: the
// parent's pid is [1], utime and stime [11] and [12], the reaped
// children's cutime and cstime [13] and [14].
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// ')' are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, errors.New("/proc stat: too few fields")
	}
	return f, nil
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// brokerProc is the broker under test.
type brokerProc struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// brokerSpec says how to start one broker.
type brokerSpec struct {
	bin     string // sealroot binary; "" runs this program's serve mode
	state   string
	store   string // "" is bbolt in state
	simDir  string
	token   string   // admin token file
	profile string   // CPU profile file (serve mode only)
	logFile string   // the broker's stderr
	extra   []string // more `sealroot broker` flags (-broker-flags)
}

// startBroker starts the broker on a free loopback port and waits until it
// answers /healthz.
func startBroker(p pinning, s brokerSpec) (*brokerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{
		"--listen", addr, "--state", s.state, "--trust-sim-root", s.simDir, "--offline",
		"--admin-token-file", s.token, "--audit-log", filepath.Join(s.state, "audit.log"),
		// The limiter and the pending-session caps stay on, so their cost is
		// measured, but every guest comes from 127.0.0.1: never refuse.
		"--rate-limit", "1000000", "--rate-burst", "1000000",
		"--max-pending-sessions", "100000", "--max-pending-per-client", "100000",
		"--log-level", "warn",
	}
	if s.store != "" {
		args = append(args, "--store", s.store)
	}
	args = append(args, s.extra...)
	var cmd *exec.Cmd
	if s.bin != "" {
		cmd = exec.Command(s.bin, append([]string{"broker"}, args...)...)
	} else {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		if s.profile != "" {
			args = append(args, "--cpuprofile", s.profile+".cpu", "--memprofile", s.profile+".allocs")
		}
		cmd = exec.Command(self, append([]string{"serve"}, args...)...)
	}
	lf, err := os.Create(s.logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	// A load test killed midway takes its broker with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := p.startPinned(cmd); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting the broker: %w", err)
	}
	lf.Close()
	b := &brokerProc{cmd: cmd, url: "http://" + addr, done: make(chan error, 1)}
	go func() { b.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-b.done:
			return nil, fmt.Errorf("the broker exited at start (%w); its log: %s", err, tail(s.logFile))
		default:
		}
		resp, err := http.Get(b.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b, nil
			}
		}
		if time.Now().After(deadline) {
			_ = b.stop()
			return nil, fmt.Errorf("the broker did not answer /healthz within 30s; its log: %s", tail(s.logFile))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the broker with SIGTERM (so a CPU profile is written) and
// waits for it.
func (b *brokerProc) stop() error {
	_ = b.cmd.Process.Signal(syscall.SIGTERM) // fails only when it has exited: Wait reports that
	select {
	case err := <-b.done:
		return err
	case <-time.After(20 * time.Second):
		_ = b.cmd.Process.Kill()
		return <-b.done
	}
}

func (b *brokerProc) cpu() time.Duration {
	d, _ := procCPU(b.cmd.Process.Pid)
	return d
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail is the last lines of a log file, for errors.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(unreadable)"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 10 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
