package workload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit statuses for a workload that cannot start, as shells use them.
const (
	StatusNotFound      = 127
	StatusCannotExecute = 126
)

// DefaultPath is used when the config's environment sets no PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// Process is a spec resolved for execution.
type Process struct {
	Path string // resolved executable
	Args []string
	Env  []string
	Dir  string
	ID   Identity
}

// StartError is a workload that could not be started; Status is 127 or 126.
type StartError struct {
	Status int
	Err    error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Resolve prepares s for execution in the current root: it resolves the
// user, fills PATH and HOME, and looks the program up in PATH.
func (s *Spec) Resolve(root string) (*Process, error) {
	id, err := s.ResolveUser(root)
	if err != nil {
		return nil, err
	}
	env := append([]string{}, s.Env...)
	path := DefaultPath
	hasPath, hasHome := false, false
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path, hasPath = v, true
		}
		if strings.HasPrefix(e, "HOME=") {
			hasHome = true
		}
	}
	if !hasPath {
		env = append(env, "PATH="+DefaultPath)
	}
	if !hasHome {
		env = append(env, "HOME="+id.Home)
	}
	p := &Process{Args: s.Args, Env: env, Dir: s.Cwd, ID: id}
	p.Path, err = lookPath(root, s.Args[0], path)
	if err != nil {
		return p, err
	}
	return p, nil
}

// lookPath finds prog like execvp: names with a slash are used as they
// are; others are searched in PATH. A missing program is a StartError 127.
func lookPath(root, prog, path string) (string, error) {
	if strings.Contains(prog, "/") {
		if _, err := os.Stat(filepath.Join(root, prog)); err != nil {
			return "", &StartError{StatusNotFound, fmt.Errorf("workload program %s: %w", prog, err)}
		}
		return prog, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, prog)
		if fi, err := os.Stat(filepath.Join(root, cand)); err == nil && fi.Mode().IsRegular() {
			return cand, nil
		}
	}
	return "", &StartError{StatusNotFound, fmt.Errorf("workload program %q not found in PATH %s", prog, path)}
}

// SetRlimits applies the spec's resource limits to the calling process so
// that the workload inherits them.
func (s *Spec) SetRlimits() error {
	for _, r := range s.Rlimits {
		res := rlimitNames[strings.ToUpper(r.Type)]
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("setting %s: %w", r.Type, err)
		}
	}
	return nil
}

// Supervisor runs one workload as a child of PID 1: it forwards signals to
// it, reaps every orphan that the kernel reparents to PID 1, and once the
// workload has exited stops whatever it left behind.
type Supervisor struct {
	Stdin          *os.File
	Stdout, Stderr *os.File
	// Grace is how long leftover processes get after SIGTERM.
	Grace time.Duration
	// Log receives notes (may be nil).
	Log io.Writer
}

// forwarded are the signals passed on to the workload.
var forwarded = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// Run starts p and returns its exit status: the exit code, or 128+N for
// signal N. A program that cannot be executed yields a *StartError.
func (sv *Supervisor) Run(p *Process) (int, error) {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return StatusCannotExecute, &StartError{StatusCannotExecute, fmt.Errorf("working directory %s: %w", p.Dir, err)}
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	attr := &os.ProcAttr{
		Dir:   p.Dir,
		Env:   p.Env,
		Files: []*os.File{sv.Stdin, sv.Stdout, sv.Stderr},
		Sys: &syscall.SysProcAttr{
			Setsid: true,
			Credential: &syscall.Credential{
				Uid: p.ID.UID, Gid: p.ID.GID, Groups: p.ID.Groups,
				NoSetGroups: false,
			},
		},
	}
	proc, err := os.StartProcess(p.Path, p.Args, attr)
	if err != nil {
		return startStatus(p.Path, err)
	}
	pid := proc.Pid
	done := make(chan int, 1)
	go func() { done <- reapUntil(pid) }()
	for {
		select {
		case s := <-sigs:
			unix.Kill(pid, s.(syscall.Signal))
		case status := <-done:
			sv.stopLeftovers()
			return status, nil
		}
	}
}

func startStatus(path string, err error) (int, error) {
	switch {
	case errors.Is(err, unix.ENOENT):
		return StatusNotFound, &StartError{StatusNotFound, fmt.Errorf("executing %s: %w (a missing program or ELF interpreter)", path, err)}
	default:
		return StatusCannotExecute, &StartError{StatusCannotExecute, fmt.Errorf("executing %s: %w", path, err)}
	}
}

// reapUntil waits for any child until pid has exited and returns its status.
func reapUntil(pid int) int {
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 255 // ECHILD: cannot happen while pid lives
		}
		if wpid == pid {
			switch {
			case ws.Exited():
				return ws.ExitStatus()
			case ws.Signaled():
				return 128 + int(ws.Signal())
			}
		}
	}
}

// stopLeftovers sends SIGTERM to every remaining process, waits up to the
// grace period reaping them, then SIGKILLs the rest.
func (sv *Supervisor) stopLeftovers() {
	if unix.Getpid() != 1 {
		return // kill(-1) outside PID 1 would hit the caller's own processes
	}
	unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(sv.Grace)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.ECHILD {
			return
		}
		if wpid <= 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	unix.Kill(-1, unix.SIGKILL)
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); err == unix.ECHILD || err != nil && err != unix.EINTR {
			return
		}
	}
}
