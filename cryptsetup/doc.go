// Package cryptsetup is sealroot's LUKS layer: the KRUN footer that carries
// the workload config at the end of a disk, unlocking LUKS1/LUKS2 volumes
// into dm-crypt mappings without the cryptsetup binary, and formatting LUKS
// volumes in pure Go (LUKS1 byte-compatible with buildah's images).
package cryptsetup
