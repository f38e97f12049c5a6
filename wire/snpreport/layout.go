// Package snpreport converts between the raw AMD SEV-SNP attestation report
// (1184 bytes, plus a GHCB certificate table) and the JSON form in which
// Confidential Containers' attestation agent sends SNP evidence to a Trustee
// KBS: the `primary_evidence` object, which is the serde serialization of the
// Rust `sev` crate's types (docs/interop.md §4).
//
// That JSON is not a byte container: it is the report taken apart into named
// fields, byte fields as JSON arrays of integers, TCB versions as objects
// whose byte layout depends on the processor generation. A verifier must put
// the signed bytes back together exactly, so Decode is strict where a
// generic JSON decoder is lenient: every field is looked up by name, every
// array must have its exact length, every integer must fit its field, and
// values that the 1184-byte layout cannot hold (an FMC on Milan, a
// mitigation vector before version 5) are refused rather than dropped.
// Reserved bytes are always zero in the rebuilt report, as the firmware
// writes them; the signature check over bytes 0..0x2A0 then decides whether
// the fields are genuine. Decode does not verify anything itself.
//
// The processor generation comes from the report's CPUID fields (versions 3
// to 5): family 19h models 00h-0Fh are Milan, 10h-1Fh and A0h-AFh Genoa,
// family 1Ah models 00h-11h Turin. Milan and Genoa lay a TCB version out as
// [bl,tee,0,0,0,0,snp,ucode], Turin as [fmc,bl,tee,snp,0,0,0,ucode].
// Version 2 reports carry no CPUID; they only exist on Milan and Genoa, so
// they use that layout (Trustee itself refuses version 2).
package snpreport

import (
	"encoding/binary"
	"fmt"

	"github.com/sealroot/sealroot/attest"
)

// ReportSize is the size of a raw SNP attestation report.
const ReportSize = 0x4A0

// Byte offsets inside the report (AMD SEV-SNP ABI, ATTESTATION_REPORT;
// docs/interop.md §5). This is sealroot's one table of the layout: the host's
// verifier (host/verify/snp), the simulated secure processor (host/verify/sim), its
// guest attester (attest/simport) and the guest init and agent all use it.
// The CPUID bytes exist from report version 3; the mitigation vectors from
// version 5. TCB fields are 8 bytes (TCBFromUint64/TCBToUint64);
// firmware versions are 3 bytes: build, minor, major.
const (
	OffVersion          = 0x000
	OffGuestSVN         = 0x004
	OffPolicy           = 0x008
	OffFamilyID         = 0x010
	OffImageID          = 0x020
	OffVMPL             = 0x030
	OffSigAlgo          = 0x034
	OffCurrentTCB       = 0x038
	OffPlatInfo         = 0x040
	OffKeyInfo          = 0x048
	OffReportData       = 0x050
	OffMeasurement      = 0x090
	OffHostData         = 0x0C0
	OffIDKeyDigest      = 0x0E0
	OffAuthorKeyDigest  = 0x110
	OffReportID         = 0x140
	OffReportIDMA       = 0x160
	OffReportedTCB      = 0x180
	OffCPUIDFam         = 0x188
	OffCPUIDMod         = 0x189
	OffCPUIDStep        = 0x18A
	OffChipID           = 0x1A0
	OffCommittedTCB     = 0x1E0
	OffCurrentBuild     = 0x1E8 // then minor, major
	OffCommittedBuild   = 0x1EC // then minor, major
	OffLaunchTCB        = 0x1F0
	OffLaunchMitVector  = 0x1F8
	OffCurrentMitVector = 0x200
	OffSignatureR       = 0x2A0
	OffSignatureS       = 0x2E8
	SigComponentSize    = 72
	SignatureEnd        = OffSignatureS + SigComponentSize

	// SignedSize is how many leading bytes of the report the signature
	// covers.
	SignedSize = OffSignatureR
	// Sizes of the byte fields the guest and the simulator read or write.
	ReportDataSize  = 64
	MeasurementSize = 48
	HostDataSize    = 32
	ChipIDSize      = 64
)

// reserved lists the byte ranges [lo,hi) that are zero in every report
// version this package handles. CPUID bytes (v3+) and mitigation vectors
// (v5) are checked separately because their presence depends on the version.
var reserved = [][2]int{
	{0x04C, 0x050},
	{0x18B, 0x1A0},
	{0x1EB, 0x1EC},
	{0x1EF, 0x1F0},
	{0x208, OffSignatureR},
	{SignatureEnd, ReportSize},
}

// byteFields are the fixed-size byte arrays of the report, by JSON name.
var byteFields = []struct {
	name string
	off  int
	size int
}{
	{"family_id", OffFamilyID, 16},
	{"image_id", OffImageID, 16},
	{"report_data", OffReportData, ReportDataSize},
	{"measurement", OffMeasurement, MeasurementSize},
	{"host_data", OffHostData, HostDataSize},
	{"id_key_digest", OffIDKeyDigest, 48},
	{"author_key_digest", OffAuthorKeyDigest, 48},
	{"report_id", OffReportID, 32},
	{"report_id_ma", OffReportIDMA, 32},
	{"chip_id", OffChipID, ChipIDSize},
}

// tcbFields are the four TCB_VERSION fields, by JSON name.
var tcbFields = []struct {
	name string
	off  int
}{
	{"current_tcb", OffCurrentTCB},
	{"reported_tcb", OffReportedTCB},
	{"committed_tcb", OffCommittedTCB},
	{"launch_tcb", OffLaunchTCB},
}

// Product is an SEV-SNP processor generation, which fixes the TCB layout.
type Product int

// Products known to this package.
const (
	ProductUnknown Product = iota // version 2 report: Milan or Genoa
	ProductMilan
	ProductGenoa
	ProductTurin
)

func (p Product) String() string {
	switch p {
	case ProductMilan:
		return "Milan"
	case ProductGenoa:
		return "Genoa"
	case ProductTurin:
		return "Turin"
	}
	return "Milan/Genoa (report v2)"
}

// turinLayout reports whether TCB versions use the Turin byte layout.
func (p Product) turinLayout() bool { return p == ProductTurin }

// ProductFromCPUID maps the report's CPUID family and model to a product:
// Milan is family 19h models 00h-0Fh; Genoa is family 19h models 10h-1Fh
// and A0h-AFh (Bergamo and Siena are Genoa to AMD's KDS); Turin is family
// 1Ah models 00h-11h. It is sealroot's one table of this fact: the host's
// verifier (host/verify/snp.ProductLineFromCPUID) and the guest agent use it.
func ProductFromCPUID(family, model uint8) (Product, error) {
	switch family {
	case 0x19:
		switch {
		case model <= 0x0F:
			return ProductMilan, nil
		case model >= 0x10 && model <= 0x1F, model >= 0xA0 && model <= 0xAF:
			return ProductGenoa, nil
		}
	case 0x1A:
		if model <= 0x11 {
			return ProductTurin, nil
		}
	}
	return ProductUnknown, fmt.Errorf("cpu family %#x model %#x is not a known SEV-SNP product (Milan, Genoa, Turin)", family, model)
}

// putTCB writes t into 8 report bytes in the product's layout; the layout
// itself is TCBToUint64's.
func putTCB(dst []byte, t attest.TCB, p Product) {
	binary.LittleEndian.PutUint64(dst, TCBToUint64(t, p.turinLayout()))
}

// tcbFrom splits 8 report bytes with TCBFromUint64; it fails when a
// byte that the product's layout reserves is not zero.
func tcbFrom(src []byte, p Product) (attest.TCB, error) {
	t, err := TCBFromUint64(binary.LittleEndian.Uint64(src), p.turinLayout())
	if err != nil {
		return attest.TCB{}, err
	}
	return *t, nil
}
