package main

import (
	"strings"
	"testing"
)

func TestBrokerHardeningFlagUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pending-sessions", "disk"}, "--pending-sessions"},
		{[]string{"--max-pending-sessions", "0"}, "--max-pending-sessions"},
		{[]string{"--rate-limit", "-1"}, "negative"},
		{[]string{"--min-tcb", "bl=x"}, "--min-tcb"},
		{[]string{"--listen", "127.0.0.1:8000", "--admin-listen", "127.0.0.1:8000"}, "--admin-listen"},
	} {
		args := append([]string{"broker", "--state", t.TempDir()}, tc.args...)
		if code, _, errOut := runCLI(t, args...); code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q, want 2 naming %s", tc.args, code, errOut, tc.want)
		}
	}
}
