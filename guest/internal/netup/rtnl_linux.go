package netup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rtnl is a NETLINK_ROUTE socket that sends one request at a time and
// waits for its acknowledgement.
type rtnl struct {
	fd  int
	seq uint32
}

// ackTimeout bounds the wait for the kernel's answer to one request.
const ackTimeout = 5 * time.Second

func dialRoute() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding rtnetlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(ackTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting rtnetlink timeout: %w", err)
	}
	return &rtnl{fd: fd, seq: uint32(time.Now().UnixNano())}, nil
}

func (r *rtnl) close() { unix.Close(r.fd) }

// replaceAddr sets addr on the interface (RTM_NEWADDR with NLM_F_REPLACE,
// so an existing identical address is not an error).
func (r *rtnl) replaceAddr(index int, p netip.Prefix) error {
	a := p.Addr().As4()
	msg := make([]byte, unix.SizeofIfAddrmsg)
	msg[0] = unix.AF_INET
	msg[1] = byte(p.Bits())
	msg[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	msg = appendAttr(msg, unix.IFA_LOCAL, a[:])
	msg = appendAttr(msg, unix.IFA_ADDRESS, a[:])
	if p.Bits() < 31 {
		b := broadcast(p).As4()
		msg = appendAttr(msg, unix.IFA_BROADCAST, b[:])
	}
	return r.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, msg)
}

// setUp sets IFF_UP on the interface.
func (r *rtnl) setUp(index int) error {
	return r.request(unix.RTM_NEWLINK, 0, ifInfo(index, unix.IFF_UP, unix.IFF_UP))
}

// ifInfo is an ifinfomsg for AF_UNSPEC.
func ifInfo(index int, flags, change uint32) []byte {
	msg := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(msg[4:], uint32(int32(index)))
	binary.NativeEndian.PutUint32(msg[8:], flags)
	binary.NativeEndian.PutUint32(msg[12:], change)
	return msg
}

// appendAttr appends a route attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := unix.SizeofRtAttr + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// request sends one message with NLM_F_REQUEST|NLM_F_ACK|flags and returns
// the kernel's verdict.
func (r *rtnl) request(typ, flags uint16, body []byte) error {
	r.seq++
	seq := r.seq
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	msg = append(msg, body...)
	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("rtnetlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("rtnetlink: no answer within %s", ackTimeout)
		}
		if err != nil {
			return fmt.Errorf("rtnetlink receive: %w", err)
		}
		done, err := ackOf(buf[:n], seq)
		if done {
			return err
		}
	}
}

// ackOf looks for the NLMSG_ERROR answering seq in a received datagram.
// done is false when the datagram holds no answer to seq.
func ackOf(b []byte, seq uint32) (done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err == nil && len(b) < unix.NLMSG_HDRLEN {
		err = errors.New("short datagram")
	}
	if err != nil {
		return true, fmt.Errorf("rtnetlink: malformed answer: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR {
			continue
		}
		if len(m.Data) < 4 {
			return true, errors.New("rtnetlink: short error message")
		}
		if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
			return true, syscall.Errno(-code)
		}
		return true, nil
	}
	return false, nil
}
