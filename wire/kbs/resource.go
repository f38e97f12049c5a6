package kbs

import (
	"fmt"
	"strings"

	"github.com/sealroot/sealroot/internal/textclip"
)

// Trustee names a resource by three segments, GET
// /kbs/v0/resource/<repository>/<type>/<tag> (docs/interop.md §4); a disk
// config's kbs_resource holds the same path. This file is sealroot's one
// statement of the segment rule, for the guest agent, the disk config and
// the broker alike.

// MaxResourceSegment is the longest resource path segment, in bytes.
const MaxResourceSegment = 128

// PassphraseRepository and PassphraseTag place a workload's LUKS
// passphrase in sealroot's broker: default/<workload_id>/passphrase
// (docs/broker.md). Trustee itself stores resources under any path.
const (
	PassphraseRepository = "default"
	PassphraseTag        = "passphrase"
)

// PassphrasePath is the resource path of workload id's passphrase.
func PassphrasePath(workloadID string) string {
	return PassphraseRepository + "/" + workloadID + "/" + PassphraseTag
}

// IsPassphrasePath reports whether a resource path is the passphrase form,
// and for which workload.
func IsPassphrasePath(repo, typ, tag string) (workloadID string, ok bool) {
	return typ, repo == PassphraseRepository && tag == PassphraseTag
}

// ValidResourceSegment reports whether s is a valid repository, type or
// tag: Trustee's syntax, at most MaxResourceSegment bytes.
func ValidResourceSegment(s string) bool {
	if s == "" || len(s) > MaxResourceSegment || s[0] == '.' {
		return false
	}
	// Trustee's syntax: [A-Za-z0-9_-][A-Za-z0-9_.-]*.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ValidResourcePath reports whether all three segments are valid.
func ValidResourcePath(repo, typ, tag string) bool {
	return ValidResourceSegment(repo) && ValidResourceSegment(typ) && ValidResourceSegment(tag)
}

// CheckResourcePath accepts "repository/type/tag" with valid segments; its
// error names the path and the first bad segment (both clipped).
func CheckResourcePath(p string) error {
	segs := strings.Split(p, "/")
	if len(segs) != 3 {
		return fmt.Errorf("resource path %q is not repository/type/tag", textclip.Clip(p, 80))
	}
	for _, s := range segs {
		if !ValidResourceSegment(s) {
			return fmt.Errorf("resource path %q: segment %q must match [A-Za-z0-9_-][A-Za-z0-9_.-]* and be at most %d bytes",
				textclip.Clip(p, 80), textclip.Clip(s, 80), MaxResourceSegment)
		}
	}
	return nil
}
