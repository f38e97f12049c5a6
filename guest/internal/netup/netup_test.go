package netup

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		in      Options
		want    Options
		wantErr string
	}{
		{name: "defaults", in: Options{}, want: Options{Iface: "eth0", Addr: DefaultAddr}},
		{name: "explicit", in: Options{Iface: "enp0s3", Addr: netip.MustParsePrefix("192.168.7.2/16")},
			want: Options{Iface: "enp0s3", Addr: netip.MustParsePrefix("192.168.7.2/16")}},
		{name: "4in6 is unmapped", in: Options{Addr: netip.MustParsePrefix("::ffff:10.0.2.15/120")},
			want: Options{Iface: "eth0", Addr: DefaultAddr}},
		{name: "4in6 prefix shorter than the mapping", in: Options{Addr: netip.MustParsePrefix("::ffff:10.0.2.15/24")},
			wantErr: "not IPv4"},
		{name: "host route", in: Options{Addr: netip.MustParsePrefix("10.1.2.3/32")},
			want: Options{Iface: "eth0", Addr: netip.MustParsePrefix("10.1.2.3/32")}},
		{name: "point to point /31", in: Options{Addr: netip.MustParsePrefix("10.1.2.0/31")},
			want: Options{Iface: "eth0", Addr: netip.MustParsePrefix("10.1.2.0/31")}},
		{name: "ipv6", in: Options{Addr: netip.MustParsePrefix("fd00::2/64")}, wantErr: "not IPv4"},
		{name: "network address", in: Options{Addr: netip.MustParsePrefix("10.0.2.0/24")}, wantErr: "network or broadcast"},
		{name: "broadcast address", in: Options{Addr: netip.MustParsePrefix("10.0.2.255/24")}, wantErr: "network or broadcast"},
		{name: "zero prefix", in: Options{Addr: netip.MustParsePrefix("10.0.2.15/0")}, wantErr: "cannot be an interface address"},
		{name: "unspecified", in: Options{Addr: netip.MustParsePrefix("0.0.0.0/8")}, wantErr: "cannot be an interface address"},
		{name: "multicast", in: Options{Addr: netip.MustParsePrefix("224.0.0.5/24")}, wantErr: "cannot be an interface address"},
		{name: "loopback", in: Options{Addr: netip.MustParsePrefix("127.0.0.2/8")}, wantErr: "cannot be an interface address"},
		{name: "long name", in: Options{Iface: "abcdefghijklmnop"}, wantErr: "not valid"},
		{name: "slash", in: Options{Iface: "eth0/1"}, wantErr: "not valid"},
		{name: "dotdot", in: Options{Iface: ".."}, wantErr: "not valid"},
		{name: "space", in: Options{Iface: "eth 0"}, wantErr: "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.normalize()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("normalize(%+v) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("normalize(%+v): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("normalize(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.2.15/24":   "10.0.2.255",
		"10.0.2.15/25":   "10.0.2.127",
		"172.16.5.4/12":  "172.31.255.255",
		"192.168.1.9/30": "192.168.1.11",
		"10.9.8.7/8":     "10.255.255.255",
		"10.9.8.7/32":    "10.9.8.7",
	} {
		if got := broadcast(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestNeedsNetwork(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"http://10.0.2.100:8000", true},
		{"https://10.0.2.100:8443/prefix", true},
		{"HTTP://10.0.2.2", true},
		{"  http://10.0.2.100:8000  ", true},
		{"http://10.0.3.100:8000", false},
		{"http://127.0.0.1:8000", false},
		{"http://broker.example:8000", false},
		{"vsock://2:8000", false},
		{"http://[::ffff:10.0.2.100]:8000", true},
		{"http://[fd00::1]:8000", false},
		{"", false},
		{"ftp://10.0.2.100", false},
		{"://bad", false},
	}
	for _, tt := range tests {
		if got := NeedsNetwork(tt.url); got != tt.want {
			t.Errorf("NeedsNetwork(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestWaitIface(t *testing.T) {
	calls := 0
	lookup := func(name string) (*net.Interface, error) {
		calls++
		if calls < 3 {
			return nil, errors.New("no such network interface")
		}
		return &net.Interface{Index: 7, Name: name}, nil
	}
	ifi, err := waitIface(context.Background(), "eth0", lookup)
	if err != nil || ifi.Index != 7 || calls != 3 {
		t.Fatalf("waitIface = %+v, %v after %d lookups; want index 7 after 3", ifi, err, calls)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	never := func(string) (*net.Interface, error) { return nil, errors.New("no such network interface") }
	_, err = waitIface(ctx, "eth0", never)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for interface eth0") {
		t.Fatalf("waitIface without the interface = %v, want a deadline error naming eth0", err)
	}
}

func TestUpRejectsBadOptionsBeforeWaiting(t *testing.T) {
	// A bad option must fail at once, not after the (here unbounded) wait.
	err := Up(context.Background(), Options{Iface: "eth0", Addr: netip.MustParsePrefix("fd00::1/64")})
	if err == nil || !strings.Contains(err.Error(), "not IPv4") {
		t.Fatalf("Up with an IPv6 address = %v", err)
	}
}
