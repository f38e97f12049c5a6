package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent takes its options from the init; it imports none of the init's
// packages (the disk config among them) and no host code.
func TestAgentDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range []string{"github.com/sealroot/sealroot/init", "github.com/sealroot/sealroot/host/"} {
			if dep == f || strings.HasPrefix(dep, f+"/") || strings.HasPrefix(dep, f) && strings.HasSuffix(f, "/") {
				t.Errorf("the agent links %s", dep)
			}
		}
	}
}
