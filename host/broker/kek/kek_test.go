package kek

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k, created, err := LoadOrCreate(filepath.Join(t.TempDir(), "kek"))
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	secret := []byte("correct horse battery staple")
	sealed, err := k.Seal(secret, AAD("passphrase", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k.Open(sealed, AAD("passphrase", "w1"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %v", err)
	}
	// Moved to another workload, altered, or under another key: refused.
	if _, err := k.Open(sealed, AAD("passphrase", "w2")); err == nil {
		t.Error("opened under another workload's aad")
	}
	if _, err := k.Open(AAD("passphrase", "w"), AAD("passphrase", "w1")); err == nil {
		t.Error("opened garbage")
	}
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	if _, err := k.Open(bad, AAD("passphrase", "w1")); err == nil {
		t.Error("opened an altered value")
	}
	other, _, _ := LoadOrCreate(filepath.Join(t.TempDir(), "kek"))
	if _, err := other.Open(sealed, AAD("passphrase", "w1")); err == nil {
		t.Error("opened under another key")
	}
	// AAD parts can not be shifted across the separator.
	if bytes.Equal(AAD("ab", "c"), AAD("a", "bc")) {
		t.Error("ambiguous aad")
	}
}

func TestLoadOrCreateKeepsKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "kek")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
	sealed, _ := k1.Seal([]byte("x"), nil)
	k2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second open created=%v %v", created, err)
	}
	if _, err := k2.Open(sealed, nil); err != nil {
		t.Fatal("key changed between starts")
	}
	// A world-readable key file is refused.
	os.Chmod(path, 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
}

func TestConcurrentCreateOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	var wg sync.WaitGroup
	keys := make([]*KEK, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, _, err := LoadOrCreate(path)
				if err == nil {
					keys[i] = k
					return
				}
				if !os.IsExist(err) && !strings.Contains(err.Error(), "file exists") {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sealed, _ := keys[0].Seal([]byte("x"), nil)
	for i, k := range keys {
		if k == nil {
			continue
		}
		if _, err := k.Open(sealed, nil); err != nil {
			t.Fatalf("creator %d got a different key", i)
		}
	}
}

func TestParse(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	for _, s := range []string{strings.Repeat("07", 32), base64.StdEncoding.EncodeToString(raw) + "\n"} {
		if _, err := Parse(s); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "zz", strings.Repeat("07", 31), "c2VjcmV0"} {
		_, err := Parse(s)
		if err == nil {
			t.Errorf("Parse(%q) accepted", s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error echoes the key text")
		}
	}
}

func FuzzOpen(f *testing.F) {
	k, _ := New(bytes.Repeat([]byte{1}, 32))
	s, _ := k.Seal([]byte("seed"), []byte("aad"))
	f.Add(s, []byte("aad"))
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		_, _ = k.Open(sealed, aad)
	})
}

func TestMACAndCheckValue(t *testing.T) {
	a, _ := New(bytes.Repeat([]byte{1}, Size))
	b, _ := New(bytes.Repeat([]byte{2}, Size))
	msg := []byte(`{"measurements":["aa"]}`)
	mac := a.MAC(msg, "workload-policy", "w1", "snp")
	if !a.VerifyMAC(mac, msg, "workload-policy", "w1", "snp") {
		t.Fatal("own MAC does not verify")
	}
	for name, ok := range map[string]bool{
		"other key":      b.VerifyMAC(mac, msg, "workload-policy", "w1", "snp"),
		"other workload": a.VerifyMAC(mac, msg, "workload-policy", "w2", "snp"),
		"other tee":      a.VerifyMAC(mac, msg, "workload-policy", "w1", "tdx"),
		"other policy":   a.VerifyMAC(mac, []byte(`{"measurements":["ab"]}`), "workload-policy", "w1", "snp"),
	} {
		if ok {
			t.Errorf("MAC verifies with %s", name)
		}
	}
	cv, err := a.CheckValue("state-1")
	if err != nil {
		t.Fatal(err)
	}
	if !a.VerifyCheckValue(cv, "state-1") || a.VerifyCheckValue(cv, "state-2") || b.VerifyCheckValue(cv, "state-1") {
		t.Fatal("check value verifies wrongly")
	}
	// A value sealed for another purpose is no check value.
	other, _ := a.Seal([]byte("sealroot key-encryption key check"), AAD("passphrase", "state-1"))
	if a.VerifyCheckValue(other, "state-1") {
		t.Fatal("a passphrase passes as a check value")
	}
}
