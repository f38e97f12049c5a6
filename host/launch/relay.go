package launch

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Relay copies stdin/stdout to a TCP connection to addr. QEMU starts one
// relay per guest connection for a guestfwd "-cmd:" rule (the "-tcp:" form
// serves only the first connection). addr must be a loopback address.
func Relay(addr string, stdin io.Reader, stdout io.Writer) error {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("relay target %s is not a loopback address", addr)
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(stdout, c) // either side ending ends the relay
		if f, ok := stdout.(*os.File); ok {
			f.Close()
		}
		close(done)
	}()
	_, _ = io.Copy(c, stdin)
	_ = c.(*net.TCPConn).CloseWrite() // fails only if the guest already closed
	<-done
	return nil
}
