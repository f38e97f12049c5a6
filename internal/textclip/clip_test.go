package textclip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"ascii cut", "abcdef", 5, "abcde…"},
		{"empty", "", 0, ""},
		{"zero limit", "abc", 0, "…"},
		{"negative limit", "abc", -1, "…"},
		{"rune boundary", "ab€d", 3, "ab…"},         // € is 3 bytes at 2..5
		{"inside rune", "ab€d", 4, "ab…"},           // would split €
		{"after rune", "ab€d", 5, "ab€…"},           // € fits whole
		{"invalid utf-8", "ab\xffcd", 3, "ab\xff…"}, // 0xff starts no rune but is no continuation byte either
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Clip(tc.s, tc.n); got != tc.want {
				t.Fatalf("Clip(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
		})
	}
}

func FuzzClip(f *testing.F) {
	for _, s := range []string{"", "abc", "ab€d", "日本語テキスト", "a\xff\x80b"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Clip(s, n)
		if len(s) <= n {
			if got != s {
				t.Fatalf("Clip(%q, %d) = %q, want it unchanged", s, n, got)
			}
			return
		}
		prefix, ok := strings.CutSuffix(got, "…")
		if !ok || !strings.HasPrefix(s, prefix) || len(prefix) > max(n, 0) {
			t.Fatalf("Clip(%q, %d) = %q: not a prefix of at most %d bytes plus …", s, n, got, n)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Clip(%q, %d) = %q cuts inside a rune", s, n, got)
		}
	})
}
