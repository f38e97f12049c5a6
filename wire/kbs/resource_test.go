package kbs

import (
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
