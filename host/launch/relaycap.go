package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// The relay's connection cap (docs/broker.md "Listeners").
//
// QEMU starts one relay process per TCP connection the guest opens to the
// broker address, so a guest (or a workload in it) could otherwise start
// processes and broker connections without bound. Each relay first takes
// one of MaxConns slots, an exclusive flock on a file in a directory the
// launcher made for this VM; the kernel drops the lock when the relay
// exits, however it exits. A relay that finds no free slot closes the
// guest's connection at once; the guest's agent retries.

// DefaultRelayConns is Forward.MaxConns when it is 0: a boot uses one
// connection at a time, with room for retries and a workload's own use.
const DefaultRelayConns = 8

// ErrRelayBusy is a relay refused because every slot is taken.
var ErrRelayBusy = errors.New("relay: too many concurrent guest connections")

// relayArgv is the guestfwd command: the relay command, the cap and the
// target address.
func relayArgv(f *Forward, slotDir string) []string {
	n := f.MaxConns
	if n <= 0 {
		n = DefaultRelayConns
	}
	argv := append([]string{}, f.RelayCommand...)
	if slotDir != "" {
		argv = append(argv, "--max-conns", strconv.Itoa(n), "--slot-dir", slotDir)
	}
	return append(argv, f.BrokerAddr)
}

// AcquireRelaySlot takes one of max slots in dir and returns the function
// that frees it (exiting frees it too). ErrRelayBusy when all are taken.
func AcquireRelaySlot(dir string, max int) (release func(), err error) {
	if max <= 0 {
		return nil, fmt.Errorf("relay: --max-conns %d: want at least 1", max)
	}
	for i := range max {
		f, err := os.OpenFile(filepath.Join(dir, "slot-"+strconv.Itoa(i)), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("relay slot: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
	return nil, ErrRelayBusy
}
