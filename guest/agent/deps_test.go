package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent takes its options from the init; it imports none of the init's
// packages (the disk config among them), no host code and no net/http.
func TestAgentDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/sealroot/sealroot/init" || strings.HasPrefix(dep, "github.com/sealroot/sealroot/init/") ||
			strings.HasPrefix(dep, "github.com/sealroot/sealroot/host/") ||
			// The init links the agent; net/http would add about 1 MB
			// (guest/internal/httpc is its client).
			strings.HasPrefix(dep, "net/http") {
			t.Errorf("the agent links %s", dep)
		}
	}
}
