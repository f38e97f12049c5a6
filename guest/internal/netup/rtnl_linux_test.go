package netup

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAppendAttrPads(t *testing.T) {
	b := appendAttr(nil, 3, []byte("eth0\x00"))
	if len(b) != 12 || binary.NativeEndian.Uint16(b) != 9 || binary.NativeEndian.Uint16(b[2:]) != 3 {
		t.Fatalf("attr = %x: want length 9 padded to 12, type 3", b)
	}
	if b := appendAttr(nil, 1, []byte{10, 0, 2, 15}); len(b) != 8 {
		t.Fatalf("4-byte attr = %x, want 8 bytes", b)
	}
}

// nlmsg builds one netlink message for ackOf tests.
func nlmsg(typ uint16, seq uint32, data []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(data))
	binary.NativeEndian.PutUint32(b, uint32(unix.NLMSG_HDRLEN+len(data)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func errData(code int32) []byte {
	d := make([]byte, 4+unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(d, uint32(code))
	return d
}

func TestAckOf(t *testing.T) {
	tests := []struct {
		name     string
		datagram []byte
		done     bool
		err      error
	}{
		{"ack", nlmsg(unix.NLMSG_ERROR, 5, errData(0)), true, nil},
		{"errno", nlmsg(unix.NLMSG_ERROR, 5, errData(-int32(unix.EPERM))), true, unix.EPERM},
		{"other sequence", nlmsg(unix.NLMSG_ERROR, 4, errData(-int32(unix.EPERM))), false, nil},
		{"not an ack", nlmsg(unix.RTM_NEWLINK, 5, make([]byte, 16)), false, nil},
		{"ack after another message", append(nlmsg(unix.RTM_NEWADDR, 5, make([]byte, 8)), nlmsg(unix.NLMSG_ERROR, 5, errData(0))...), true, nil},
		{"short error", nlmsg(unix.NLMSG_ERROR, 5, []byte{1, 2}), true, errors.New("short")},
		{"truncated", nlmsg(unix.NLMSG_ERROR, 5, errData(0))[:10], true, errors.New("malformed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done, err := ackOf(tt.datagram, 5)
			if done != tt.done {
				t.Fatalf("done = %v, want %v (err %v)", done, tt.done, err)
			}
			switch want := tt.err.(type) { //nolint:errorlint // the table's expected error, not a result
			case nil:
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
			case syscall.Errno:
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), want.Error()) {
					t.Fatalf("err = %v, want one containing %q", err, want)
				}
			}
		})
	}
}

func FuzzAckOf(f *testing.F) {
	f.Add(nlmsg(unix.NLMSG_ERROR, 5, errData(0)))
	f.Add(nlmsg(unix.NLMSG_ERROR, 5, errData(-1)))
	f.Add(nlmsg(unix.NLMSG_ERROR, 5, []byte{1}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		done, err := ackOf(b, 5)
		if !done && err != nil {
			t.Fatalf("not done but err %v", err)
		}
	})
}

// inNetns runs fn on a goroutine locked to a thread in a fresh network
// namespace. The thread is never unlocked, so it exits with the goroutine
// and takes the namespace with it. It skips when the caller may not
// create namespaces.
func inNetns(t *testing.T, fn func(nsPath string)) {
	t.Helper()
	skip := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			skip <- "cannot create a network namespace: " + err.Error()
			return
		}
		fn("/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net")
	}()
	<-done
	select {
	case why := <-skip:
		t.Skip(why)
	default:
	}
}

// addBridge creates a bridge interface (the only virtual link type that
// needs no extra module in most kernels) in the calling thread's netns.
func addBridge(name string) error {
	nl, err := dialRoute()
	if err != nil {
		return err
	}
	defer nl.close()
	msg := ifInfo(0, 0, 0)
	msg = appendAttr(msg, unix.IFLA_IFNAME, append([]byte(name), 0))
	kind := appendAttr(nil, unix.IFLA_INFO_KIND, []byte("bridge"))
	msg = appendAttr(msg, unix.IFLA_LINKINFO, kind)
	return nl.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, msg)
}

// TestUpInNetns brings up an interface that appears while Up waits for it,
// in a private network namespace, and checks the kernel's view afterwards.
func TestUpInNetns(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	var failures []string
	fail := func(format string, err error) {
		failures = append(failures, strings.Replace(format, "%v", errString(err), 1))
	}
	inNetns(t, func(nsPath string) {
		// Another thread joins the namespace and creates "eth0" a
		// little after Up has started waiting for it.
		created := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread is discarded
			fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Setns(fd, unix.CLONE_NEWNET)
				unix.Close(fd)
			}
			if err == nil {
				time.Sleep(50 * time.Millisecond)
				err = addBridge("eth0")
			}
			created <- err
		}()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		upErr := Up(ctx, Options{Loopback: true})
		if err := <-created; err != nil {
			fail("creating eth0 in the namespace: %v", err)
			return
		}
		if upErr != nil {
			fail("Up: %v", upErr)
			return
		}
		// Up is idempotent.
		if err := Up(ctx, Options{Loopback: true}); err != nil {
			fail("second Up: %v", err)
		}

		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			fail("eth0 after Up: %v", err)
			return
		}
		if ifi.Flags&net.FlagUp == 0 {
			fail("eth0 is not up: %v", errors.New(ifi.Flags.String()))
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			fail("eth0 addresses: %v", err)
		}
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		if !slices.Contains(got, "10.0.2.15/24") {
			fail("eth0 addresses: %v", errors.New(strings.Join(got, ",")+" lack 10.0.2.15/24"))
		}
		if n := strings.Count(strings.Join(got, ","), "10.0.2.15/"); n != 1 {
			fail("eth0 has 10.0.2.15 %v times", errors.New(strconv.Itoa(n)))
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil || lo.Flags&net.FlagUp == 0 {
			fail("lo is not up: %v", err)
		}

		// A missing interface ends with the context, naming it.
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer scancel()
		if err := Up(sctx, Options{Iface: "nosuch0"}); err == nil || !strings.Contains(err.Error(), "nosuch0") {
			fail("Up of a missing interface: %v", err)
		}
	})
	for _, f := range failures {
		t.Error(f)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
