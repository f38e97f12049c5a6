package kbs

import (
	"regexp"
	"strings"
	"testing"
)

func TestCheckResourcePath(t *testing.T) {
	for p, ok := range map[string]bool{
		"default/wl-1/passphrase": true, "repo/type/tag.v2": true, "_a/-b/c": true,
		"a/b": false, "a/b/c/d": false, ".a/b/c": false, "a//c": false, "a/b:c/d": false, "": false,
		"a/b/" + strings.Repeat("x", 129): false,
	} {
		if err := CheckResourcePath(p); (err == nil) != ok {
			t.Errorf("CheckResourcePath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

// FuzzValidResourceSegment holds the hand-written segment check to
// Trustee's pattern, written as the regular expression it states, and to
// the length cap.
func FuzzValidResourceSegment(f *testing.F) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*$`)
	for _, s := range []string{"", "a", ".a", "a.", "-_.", "default", "a/b", "é", "a b", strings.Repeat("x", 128), strings.Repeat("x", 129), "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= MaxResourceSegment && pattern.MatchString(s)
		if got := ValidResourceSegment(s); got != want {
			t.Fatalf("ValidResourceSegment(%q) = %v, want %v", s, got, want)
		}
	})
}
