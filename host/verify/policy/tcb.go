package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// ParseTCB parses a minimum TCB as given to --min-tcb. Two forms:
//
//   - named components, comma separated, any order, each at most once:
//     "bl=3,tee=0,snp=8,ucode=115" (also "fmc=N" for Turin; the long names
//     bootloader, microcode are accepted too). Omitted components are 0.
//   - a raw 64-bit TCB_VERSION as hex ("0x7300000000000803" or without the
//     0x), in the Milan/Genoa byte layout [bl,tee,0,0,0,0,snp,ucode] (the
//     value AMD's KDS URLs and go-sev-guest use). Prefix "turin:" to read
//     it in the Turin layout [fmc,bl,tee,snp,0,0,0,ucode]. Reserved bytes
//     must be zero. The byte layouts are snpreport.TCBFromUint64's.
func ParseTCB(spec string) (*attest.TCB, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, fmt.Errorf("empty tcb spec")
	}
	if strings.Contains(s, "=") {
		return parseNamedTCB(s)
	}
	turin := false
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "turin:"); ok {
		turin, s = true, rest
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if s == "" || len(s) > 16 {
		return nil, fmt.Errorf("tcb %q: want named components (bl=N,tee=N,snp=N,ucode=N) or a 64-bit hex value", spec)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return nil, fmt.Errorf("tcb %q: not a 64-bit hex value", spec)
	}
	tcb, err := snpreport.TCBFromUint64(v, turin)
	if err != nil {
		return nil, fmt.Errorf("tcb %q: %w", spec, err)
	}
	return tcb, nil
}

func parseNamedTCB(spec string) (*attest.TCB, error) {
	var t attest.TCB
	seen := map[string]bool{}
	for _, field := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return nil, fmt.Errorf("tcb %q: component %q is not name=value", spec, field)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		var dst *uint8
		switch name {
		case "bl", "bootloader":
			name, dst = "bl", &t.Bootloader
		case "tee":
			dst = &t.TEE
		case "snp":
			dst = &t.SNP
		case "ucode", "microcode":
			name, dst = "ucode", &t.Microcode
		case "fmc":
			dst = &t.FMC
		default:
			return nil, fmt.Errorf("tcb %q: unknown component %q (want bl, tee, snp, ucode, fmc)", spec, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("tcb %q: component %q given twice", spec, name)
		}
		seen[name] = true
		n, err := strconv.ParseUint(strings.TrimSpace(val), 0, 8)
		if err != nil {
			return nil, fmt.Errorf("tcb %q: %s value %q is not an integer 0-255", spec, name, val)
		}
		*dst = uint8(n)
	}
	return &t, nil
}

// FormatTCB renders a TCB in the named form ParseTCB accepts.
func FormatTCB(t attest.TCB) string {
	s := fmt.Sprintf("bl=%d,tee=%d,snp=%d,ucode=%d", t.Bootloader, t.TEE, t.SNP, t.Microcode)
	if t.FMC != 0 {
		s += fmt.Sprintf(",fmc=%d", t.FMC)
	}
	return s
}
