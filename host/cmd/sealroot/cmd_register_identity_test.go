package main

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/broker"
)

// TestRegisterNeedsHostDataOrAcknowledgement: `register` without
// --host-data is a usage error unless --measurement-only acknowledges it;
// `workloads list` and `show` mark measurement-only workloads, buildah's
// registrations included, and `register` takes --allow-migration-agent.
func TestRegisterNeedsHostDataOrAcknowledgement(t *testing.T) {
	url, tok := testAdminBroker(t)
	conn := []string{"--broker", url, "--admin-token-file", tok}
	m := hex.EncodeToString(make([]byte, 48))
	hd := strings.Repeat("ab", 32)

	code, _, errOut := runCLI(t, append([]string{"register", "--workload-id", "bare", "--tee", "snp", "--measurement", m}, conn...)...)
	if code != 2 || !strings.Contains(errOut, "--host-data") || !strings.Contains(errOut, "--measurement-only") {
		t.Fatalf("register without --host-data: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, append([]string{"register", "--workload-id", "bare", "--tee", "snp", "--measurement", m, "--measurement-only"}, conn...)...); code != 0 {
		t.Fatalf("register --measurement-only: %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, append([]string{"register", "--workload-id", "bound", "--tee", "snp", "--measurement", m,
		"--host-data", hd, "--allow-migration-agent", "--json"}, conn...)...)
	var w broker.AdminWorkload
	if code != 0 || json.Unmarshal([]byte(out), &w) != nil || w.MeasurementOnly || !w.Policy.AllowMigrationAgent || w.Policy.HostData != hd {
		t.Fatalf("register --host-data: %d %s %s", code, out, errOut)
	}
	// buildah's endpoint has no host_data: accepted, and marked.
	req, _ := http.NewRequest(http.MethodPost, url+"/kbs/v0/register_workload", strings.NewReader(
		`{"workload_id":"buildah","launch_measurement":"`+m+`","passphrase":"p","tee_config":""}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("buildah registration: %v %v", err, resp)
	}
	resp.Body.Close()

	code, out, _ = runCLI(t, append([]string{"workloads", "list"}, conn...)...)
	if code != 0 || !strings.Contains(out, "IDENTITY") {
		t.Fatalf("list: %d %s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		want := map[string]string{"bare": "MEASUREMENT-ONLY", "buildah": "MEASUREMENT-ONLY", "bound": "host-data"}[f[0]]
		if want != "" && f[4] != want {
			t.Errorf("list row %q: identity %q, want %q", line, f[4], want)
		}
	}
	code, out, _ = runCLI(t, append([]string{"workloads", "show", "buildah"}, conn...)...)
	if code != 0 || !strings.Contains(out, "MEASUREMENT ONLY") {
		t.Fatalf("show buildah: %d %s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"workloads", "show", "bound"}, conn...)...)
	if code != 0 || strings.Contains(out, "MEASUREMENT ONLY") || !strings.Contains(out, "migration agent allowed: yes") {
		t.Fatalf("show bound: %d %s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"workloads", "show", "buildah", "--json"}, conn...)...)
	if code != 0 || !strings.Contains(out, `"measurement_only": true`) {
		t.Fatalf("show --json: %d %s", code, out)
	}
}
