package image

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// logCapture keeps every record a Logger writes, as JSON lines.
type logCapture struct{ buf bytes.Buffer }

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&c.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records, each as its JSON object.
func (c *logCapture) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(c.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// find returns the first record with message msg.
func (c *logCapture) find(t *testing.T, msg string) map[string]any {
	t.Helper()
	for _, r := range c.records(t) {
		if r["msg"] == msg {
			return r
		}
	}
	t.Fatalf("no %q record in:\n%s", msg, c.buf.String())
	return nil
}

// TestBuildLogs: an encrypted verity build logs each step on Options.Logger
// with the sizes and the root hash it built, and never the passphrase.
func TestBuildLogs(t *testing.T) {
	needTools(t, "mkfs.ext4", "debugfs", "tune2fs")
	rootfs := t.TempDir()
	os.WriteFile(filepath.Join(rootfs, "app"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	pass, err := cryptsetup.GeneratePassphrase()
	if err != nil {
		t.Fatal(err)
	}
	fo := cryptsetup.FormatOptions{GeneratedPassphrase: true, GuestRAMMiB: 256, GuestCPUs: 1}
	enc := func(dst *os.File, src io.Reader, n int64, p []byte) (int64, error) {
		return cryptsetup.FormatLUKS2(dst, src, n, p, fo)
	}
	var logs logCapture
	res, err := Build(Options{RootfsDir: rootfs, OutDir: t.TempDir(), Encrypt: enc, Passphrase: pass, Integrity: "verity",
		Config: diskconfig.Config{TEE: "sim", WorkloadID: "logs", CPUs: 1, RAMMiB: 256, AttestationURL: "http://10.0.2.100:8000"},
		Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	mkfs := logs.find(t, "making the ext4 filesystem")
	if mkfs["dir"] != rootfs || mkfs["size_mib"] != float64(res.FSSize>>20) || mkfs["level"] != "INFO" {
		t.Errorf("mkfs record %v, want dir %s and size_mib %d", mkfs, rootfs, res.FSSize>>20)
	}
	if built := logs.find(t, "built the dm-verity tree"); built["root_hash"] != res.RootHash {
		t.Errorf("verity record %v, want root_hash %s", built, res.RootHash)
	}
	logs.find(t, "encrypting the filesystem")
	if strings.Contains(logs.buf.String(), string(pass)) {
		t.Fatal("the passphrase is in the build's log")
	}

	// No Logger: the records are discarded and the build runs.
	if _, err := Build(Options{RootfsDir: rootfs, OutDir: t.TempDir(),
		Config: diskconfig.Config{TEE: "none", WorkloadID: "quiet", CPUs: 1, RAMMiB: 256}}); err != nil {
		t.Fatal(err)
	}
}
