package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The module's layers (docs/design.md, "Package map"): wire/ is the leaf
// layer of wire formats, guest/ runs in the guest, host/ on the host, and
// attest, cryptsetup, verity and internal/ are shared libraries.
const module = "github.com/sealroot/sealroot/"

// The init is what the TEE measures and what a reviewer reads: it links no
// host code, no verifier or relying-party policy, and none of the TEE client
// libraries whose report conversions pull in the protobuf runtime
// (guest/tsm has its own device drivers), and no net/http: the agent speaks
// HTTP/1.1 through guest/internal/httpc, which keeps the initrd small
// (docs/libkrunfw.md "Initrd size"). `make depcheck` runs this test.
func TestInitDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []struct{ prefix, why string }{
		{module + "host/", "host code (verifiers and their policy live in host/verify/)"},
		{module + "tests/", "test code"},
		{"google.golang.org/protobuf/", "the protobuf runtime"},
		{"github.com/google/go-sev-guest/client", "go-sev-guest's client (its report conversions pull in protobuf)"},
		{"github.com/google/go-sev-guest/proto/", "go-sev-guest's protobuf types"},
		{"github.com/google/go-sev-guest/verify", "an SNP verifier"},
		{"github.com/google/go-tdx-guest/client", "go-tdx-guest's client"},
		{"github.com/google/go-tdx-guest/proto/", "go-tdx-guest's protobuf types"},
		{"github.com/google/go-tdx-guest/verify", "a TDX verifier"},
		{"github.com/veraison/", "a CCA token verifier"},
		{"net/http", "net/http and its HTTP/2, proxy, MIME and IDNA closure (the agent's client is guest/internal/httpc)"},
		{"vendor/golang.org/x/net/http", "net/http's HTTP/2 and proxy support"},
		{"mime", "MIME parsing (net/http's)"},
		{"github.com/fxamacker/cbor/", "a general CBOR library (attest/configbind reads the CCA token with its own small reader)"},
		{"regexp", "regular expressions (the config's and LUKS's lexical checks are written by hand: wire/diskconfig/lexical.go)"},
		{"github.com/go-jose/", "a JOSE library (wire/kbs has the JWE key wrap and Concat KDF it needs)"},
		{"github.com/gowebpki/jcs", "a JSON canonicalisation library (wire/kbs/canon.go)"},
		{"github.com/BurntSushi/toml", "a TOML parser (init-data is parsed by the broker)"},
	}
	allowed := map[string]bool{
		"github.com/google/go-sev-guest/client/linuxabi": true,
		"github.com/google/go-tdx-guest/client/linuxabi": true,
	}
	deps := strings.Fields(string(out))
	own := 0
	for _, dep := range deps {
		if strings.HasPrefix(dep, module) {
			own++
		}
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f.prefix) && !allowed[dep] {
				t.Errorf("the init links %s: %s", dep, f.why)
			}
		}
	}
	// The check reads what go list printed: it must have listed the init's
	// own packages for the loop above to mean anything.
	if own < 5 {
		t.Fatalf("go list -deps named %d sealroot packages; want the init's whole closure:\n%s", own, out)
	}
}

// TestLayers checks the direction of every import in the module: wire/
// imports no other sealroot layer but the shared attest vocabulary and
// internal/, guest/ and host/ never import each other, and the shared
// libraries import neither.
func TestLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	layer := func(p string) string {
		rest, ok := strings.CutPrefix(p, module)
		if !ok {
			return ""
		}
		top, _, _ := strings.Cut(rest, "/")
		switch top {
		case "wire", "guest", "host", "tests", "tools":
			return top
		}
		return "shared" // attest, cryptsetup, verity, internal
	}
	// may[from][to]: a package of layer from may import one of layer to.
	may := map[string]map[string]bool{
		"wire":   {"wire": true},
		"shared": {"wire": true, "shared": true},
		"guest":  {"wire": true, "shared": true, "guest": true},
		"host":   {"wire": true, "shared": true, "host": true},
	}
	sharedWire := map[string]bool{}
	for _, p := range wireMayLink {
		sharedWire[p] = true
	}
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from := fields[0]
		fromLayer := layer(from)
		if may[fromLayer] == nil {
			continue // tests and tools may import anything
		}
		pkgs++
		for _, imp := range fields[1:] {
			toLayer := layer(imp)
			if toLayer == "" || may[fromLayer][toLayer] {
				continue
			}
			if fromLayer == "wire" && sharedWire[imp] {
				continue
			}
			t.Errorf("%s (%s) imports %s (%s)", from, fromLayer, imp, toLayer)
		}
	}
	if pkgs < 20 {
		t.Fatalf("go list named %d packages; want the whole module:\n%s", pkgs, out)
	}
}

// wireMayLink are the two sealroot packages outside wire/ that a wire
// package may import: attest (the TEE table and the evidence types the SNP
// codec fills) and internal/textclip (bounding untrusted text in errors).
// Both are leaves themselves: TestWireLeaf holds them to the standard
// library, and attest to textclip.
var wireMayLink = []string{module + "attest", module + "internal/textclip"}

// TestWireLeaf checks that the wire contracts are a leaf layer
// (docs/design.md, "Package map"): the whole build closure of every wire/
// package, tests excluded, is the standard library, golang.org/x/crypto,
// other wire/ packages and wireMayLink, and those link only the standard
// library. A wire package that needs anything else (a JOSE library, a
// TOML parser, a uuid package) must write the little it needs or leave
// the work to the guest or host package that uses it.
func TestWireLeaf(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", "./wire/...", "./attest", "./internal/textclip")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := func(p string, std bool) bool {
		return std || strings.HasPrefix(p, "golang.org/x/crypto/") || strings.HasPrefix(p, module+"wire/") || slices.Contains(wireMayLink, p)
	}
	wire := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		p, std, _ := strings.Cut(line, " ")
		if strings.HasPrefix(p, module+"wire/") {
			wire++
		}
		if !allowed(p, std == "true") {
			t.Errorf("a wire package links %s: wire/ may link only the standard library, golang.org/x/crypto, wire/ and %v", p, wireMayLink)
		}
	}
	if wire < 4 {
		t.Fatalf("go list -deps named %d wire packages; want all of wire/:\n%s", wire, out)
	}
	// attest and textclip: the standard library (and textclip) only.
	cmd = exec.Command("go", "list", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}", "./attest", "./internal/textclip")
	cmd.Dir = "../.."
	if out, err = cmd.Output(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		from, imports, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(imports) {
			if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") && imp != module+"internal/textclip" {
				t.Errorf("%s imports %s: a package wire/ links must itself be a leaf", from, imp)
			}
		}
	}
}
