package cryptsetup

import (
	"regexp"
	"testing"
)

// The regular expressions isUUID replaced: it must agree with them.
var (
	lowerUUIDRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	anyUUIDRe   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

var uuidSamples = []string{
	"0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d0", "0B3EE1B6-2F5D-4B3C-9F5E-64A6E3A2C1D0", "0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d",
	"0b3ee1b62f5d-4b3c-9f5e-64a6e3a2c1d0-", "0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1dg", "", "0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d0\n",
	"{0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d}", "0b3ee1b6_2f5d_4b3c_9f5e_64a6e3a2c1d0",
}

func TestIsUUID(t *testing.T) {
	for _, s := range uuidSamples {
		if got, want := isUUID(s, false), lowerUUIDRe.MatchString(s); got != want {
			t.Errorf("isUUID(%q, lower) = %v, want %v", s, got, want)
		}
		if got, want := isUUID(s, true), anyUUIDRe.MatchString(s); got != want {
			t.Errorf("isUUID(%q, any case) = %v, want %v", s, got, want)
		}
	}
}

func FuzzIsUUID(f *testing.F) {
	for _, s := range uuidSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isUUID(s, false) != lowerUUIDRe.MatchString(s) || isUUID(s, true) != anyUUIDRe.MatchString(s) {
			t.Fatalf("isUUID(%q) disagrees with the regular expression", s)
		}
	})
}
