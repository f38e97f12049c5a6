package kbs

import (
	"fmt"
	"regexp"
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

// resourceSegment is Trustee's syntax for repository, type and tag.
var resourceSegment = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*$`)

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
	return len(s) <= MaxResourceSegment && resourceSegment.MatchString(s)
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
