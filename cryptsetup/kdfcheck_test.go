package cryptsetup

import (
	"errors"
	"testing"
	"time"
)

func TestResolveKDF(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		o       FormatOptions
		want    KDF
		param   string // KDFParamError.Param, "" when valid
	}{
		{"generated passphrase", 2, FormatOptions{GeneratedPassphrase: true}, KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: MinPBKDF2Iterations}, ""},
		{"user passphrase sized to the guest", 2, FormatOptions{GuestRAMMiB: 512, GuestCPUs: 1}, KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 128 << 10, Parallel: 1}, ""},
		{"user pbkdf2 is not benchmarked", 1, FormatOptions{KDF: KDFOptions{IterTime: time.Hour}}, KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: MinPBKDF2Iterations}, ""},
		{"iterations above what the guest unlocks", 2, FormatOptions{GeneratedPassphrase: true, KDF: KDFOptions{Iterations: 100000000}}, KDF{}, "iterations"},
		{"iterations below cryptsetup's minimum", 1, FormatOptions{KDF: KDFOptions{Iterations: 10}}, KDF{}, "iterations"},
		{"argon2 memory above 4 GiB", 2, FormatOptions{KDF: KDFOptions{Type: KDFArgon2id, MemoryKiB: 5 << 20}}, KDF{}, "memory"},
		{"argon2 lanes", 2, FormatOptions{KDF: KDFOptions{Type: KDFArgon2i, MemoryKiB: 1 << 20, Parallel: 9}}, KDF{}, "parallel"},
		{"argon2 time", 2, FormatOptions{KDF: KDFOptions{Type: KDFArgon2id, MemoryKiB: 1 << 20, Time: 2}}, KDF{}, "time"},
		{"unknown type", 2, FormatOptions{KDF: KDFOptions{Type: "scrypt"}}, KDF{}, "type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.o.ResolveKDF(tc.version)
			if tc.param != "" {
				var pe *KDFParamError
				if !errors.As(err, &pe) || pe.Param != tc.param {
					t.Fatalf("ResolveKDF = %v, %v; want a KDFParamError for %s", got, err, tc.param)
				}
				return
			}
			if err != nil || got.Type != tc.want.Type || got.Hash != tc.want.Hash || got.Iterations != tc.want.Iterations ||
				got.Time != tc.want.Time || got.MemoryKiB != tc.want.MemoryKiB || got.Parallel != tc.want.Parallel {
				t.Fatalf("ResolveKDF = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestMinGuestMiB(t *testing.T) {
	if n := (KDF{Type: KDFPBKDF2, Iterations: 1000}).MinGuestMiB(); n != 0 {
		t.Fatalf("pbkdf2 needs %d MiB, want 0", n)
	}
	if n := (KDF{Type: KDFArgon2id, MemoryKiB: 786432}).MinGuestMiB(); n != 768+GuestOverheadMiB {
		t.Fatalf("argon2id of 768 MiB needs a guest of %d MiB, want %d", n, 768+GuestOverheadMiB)
	}
}
