package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// pgServer is a PostgreSQL server running on this machine: its postmaster
// and the backends it forks. In a deployment the database is a machine of
// its own; here it shares the two CPUs with the broker and the guests. The
// load test binds it to the guests' CPUs, so that it does not take the
// broker's core, and counts its CPU per handshake.
type pgServer struct {
	postmaster int
	saved      map[int]unix.CPUSet // affinity masks to restore
}

// findLocalServer returns the server at dsn when it runs on this machine
// (a loopback or Unix-socket address, and a backend process of ours that
// is a child of a postmaster), or nil when it does not.
func findLocalServer(ctx context.Context, dsn string) (*pgServer, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, errors.New("the PostgreSQL DSN is not a URL")
	}
	if !localHost(u) {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return nil, fmt.Errorf("asking PostgreSQL for its backend's pid: %w", err)
	}
	if comm(backend) != "postgres" {
		return nil, nil // another machine's, or a container's, pid space
	}
	parent, err := parentOf(backend)
	if err != nil || comm(parent) != "postgres" {
		return nil, nil
	}
	return &pgServer{postmaster: parent, saved: map[int]unix.CPUSet{}}, nil
}

// localHost says whether u addresses a server on this machine: a loopback
// address, localhost, or a Unix socket directory.
func localHost(u *url.URL) bool {
	h := u.Hostname()
	if hq := u.Query().Get("host"); hq != "" {
		h = hq
	}
	if h == "" || strings.HasPrefix(h, "/") || h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// pids is the postmaster and its children now.
func (s *pgServer) pids() []int {
	out := []int{s.postmaster}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.postmaster, s.postmaster))
	if err != nil {
		return out
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// bind moves the server's processes to set (children forked later
// inherit the postmaster's mask) and remembers the masks they had.
func (s *pgServer) bind(set *unix.CPUSet) error {
	for _, pid := range s.pids() {
		var old unix.CPUSet
		if err := unix.SchedGetaffinity(pid, &old); err != nil {
			continue // it has exited
		}
		if err := unix.SchedSetaffinity(pid, set); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return fmt.Errorf("binding PostgreSQL process %d: %w", pid, err)
		}
		if _, seen := s.saved[pid]; !seen {
			s.saved[pid] = old
		}
	}
	return nil
}

// restore gives every process bind moved, and every child forked since,
// the postmaster's old mask back.
func (s *pgServer) restore() {
	old, ok := s.saved[s.postmaster]
	if !ok {
		return
	}
	for _, pid := range s.pids() {
		mask := old
		if m, ok := s.saved[pid]; ok {
			mask = m
		}
		_ = unix.SchedSetaffinity(pid, &mask) // an exited backend needs nothing
	}
}

// cpu is the CPU time the server has used: the postmaster's and its live
// children's, and that of the children it has reaped.
func (s *pgServer) cpu() time.Duration {
	var total time.Duration
	for i, pid := range s.pids() {
		f, err := statFields(pid)
		if err != nil {
			continue
		}
		n := 2 // utime, stime
		if i == 0 {
			n = 4 // and cutime, cstime: the backends that have exited
		}
		for _, v := range f[11 : 11+n] {
			t, _ := strconv.ParseInt(v, 10, 64)
			total += time.Duration(t) * clockTick
		}
	}
	return total
}

// parentOf is pid's parent.
func parentOf(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// comm is the command name of pid, or "" when it cannot be read.
func comm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
