package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The init is what the TEE measures and what a reviewer reads: it links no
// host code, and none of the TEE client libraries whose report conversions
// pull in the protobuf runtime (guest/tsm has its own device drivers).
func TestInitDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/sealroot/sealroot/host/",
		"google.golang.org/protobuf/",
		"github.com/google/go-sev-guest/client",
		"github.com/google/go-sev-guest/proto/",
		"github.com/google/go-sev-guest/verify",
		"github.com/google/go-tdx-guest/client",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) && dep != "github.com/google/go-sev-guest/client/linuxabi" && dep != "github.com/google/go-tdx-guest/client/linuxabi" {
				t.Errorf("the init links %s", dep)
			}
		}
	}
}
