package diskconfig

import (
	"regexp"
	"strings"
	"testing"
)

// The regular expressions the hand checks replaced: each check must agree
// with its expression on every input.
var (
	lowerUUIDRe   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	anyUUIDRe     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	rootHashRe    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	overlaySizeRe = regexp.MustCompile(`^([1-9][0-9]{0,15}[kmg]?|[1-9][0-9]?%|100%)$`)
)

var lexicalSamples = []string{
	"0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d0", "0B3EE1B6-2F5D-4B3C-9F5E-64A6E3A2C1D0", "0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d",
	"0b3ee1b62f5d-4b3c-9f5e-64a6e3a2c1d0-", "0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1dg", "", "0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d0\n",
	"{0b3ee1b6-2f5d-4b3c-9f5e-64a6e3a2c1d}", "0b3ee1b6_2f5d_4b3c_9f5e_64a6e3a2c1d0",
	strings.Repeat("a1", 32), strings.Repeat("A1", 32), strings.Repeat("a1", 32) + "\n", strings.Repeat("0", 63), strings.Repeat("f", 65),
	"1", "0", "01", "1k", "1K", "64m", "2g", "1t", "k", "%", "1%", "0%", "9%", "10%", "99%", "100%", "101%", "100", "1000%",
	"1234567890123456", "12345678901234567", "1234567890123456g", "12345678901234567k", "50%\n", " 50%", "5 0", "-1", "+1", "1.5g",
}

func checkLexical(t *testing.T, s string) {
	t.Helper()
	if got, want := IsUUID(s, false), lowerUUIDRe.MatchString(s); got != want {
		t.Errorf("IsUUID(%q, lower) = %v, want %v", s, got, want)
	}
	if got, want := IsUUID(s, true), anyUUIDRe.MatchString(s); got != want {
		t.Errorf("IsUUID(%q, any case) = %v, want %v", s, got, want)
	}
	if got, want := isRootHash(s), rootHashRe.MatchString(s); got != want {
		t.Errorf("isRootHash(%q) = %v, want %v", s, got, want)
	}
	if got, want := isOverlaySize(s), overlaySizeRe.MatchString(s); got != want {
		t.Errorf("isOverlaySize(%q) = %v, want %v", s, got, want)
	}
}

func TestLexicalChecks(t *testing.T) {
	for _, s := range lexicalSamples {
		checkLexical(t, s)
	}
}

func FuzzLexicalChecks(f *testing.F) {
	for _, s := range lexicalSamples {
		f.Add(s)
	}
	f.Fuzz(checkLexical)
}
