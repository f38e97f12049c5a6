package snp

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/internal/textclip"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// The report layout is wire/snpreport's table (docs/interop.md §5).
const (
	// SignedSize is how many leading bytes of the report the signature covers.
	SignedSize = snpreport.SignedSize
	// ReportSize is the size of a raw report.
	ReportSize = snpreport.ReportSize

	policyDebugBit = 19
	sigAlgoECDSA   = 1 // ECDSA P-384 with SHA-384
)

// header is what the verifier reads from a report before anything about it
// is trusted: enough to find the key that should have signed it.
type header struct {
	version     uint32
	signer      abi.ReportSigner
	signerOK    bool // signing_key names the VCEK or the VLEK
	chipID      []byte
	reportedTCB uint64
	// fmsLine is the product line named by the CPUID bytes (report
	// version 3 and later), or "" when absent or unknown.
	fmsLine string
}

// peekHeader reads the lookup fields of a report of exactly ReportSize
// bytes without validating anything.
func peekHeader(raw []byte) header {
	h := header{
		version:     binary.LittleEndian.Uint32(raw[snpreport.OffVersion:]),
		chipID:      raw[snpreport.OffChipID : snpreport.OffChipID+snpreport.ChipIDSize],
		reportedTCB: binary.LittleEndian.Uint64(raw[snpreport.OffReportedTCB:]),
	}
	h.signer = abi.ReportSigner((binary.LittleEndian.Uint32(raw[snpreport.OffKeyInfo:]) >> 2) & 7)
	h.signerOK = h.signer == abi.VcekReportSigner || h.signer == abi.VlekReportSigner
	if h.version >= abi.ReportVersion3 {
		h.fmsLine = ProductLineFromCPUID(raw[snpreport.OffCPUIDFam], raw[snpreport.OffCPUIDFam+1])
	}
	return h
}

// ProductLineFromCPUID returns the SNP product line (the name AMD's KDS
// uses: "Milan", "Genoa" or "Turin") of a CPU family and model, or "" for
// anything else. The table is snpreport.ProductFromCPUID, which the guest
// agent shares. go-sev-guest v0.15.0 knows a single model per product line
// (it calls a real Genoa part of model A0h "Unknown"), hence a table.
func ProductLineFromCPUID(family, model byte) string {
	p, err := snpreport.ProductFromCPUID(family, model)
	if err != nil {
		return ""
	}
	return p.String()
}

// ParseReport parses a raw SNP report strictly: exactly ReportSize bytes,
// a version from 2 to 5, ECDSA P-384 signature algorithm, a valid guest
// policy and signer info, and zero reserved bytes. It does not check the
// signature.
func ParseReport(b []byte) (*spb.Report, error) {
	if len(b) != ReportSize {
		return nil, fmt.Errorf("report is %d bytes, want %d", len(b), ReportSize)
	}
	v := binary.LittleEndian.Uint32(b[snpreport.OffVersion:])
	if v < abi.MinSupportedReportVersion || v > abi.MaxSupportedReportVersion {
		return nil, fmt.Errorf("report version %d is not supported (want %d to %d)", v, abi.MinSupportedReportVersion, abi.MaxSupportedReportVersion)
	}
	if a := binary.LittleEndian.Uint32(b[snpreport.OffSigAlgo:]); a != sigAlgoECDSA {
		return nil, fmt.Errorf("signature algorithm %d is not ECDSA P-384 with SHA-384 (1)", a)
	}
	r, err := abi.ReportToProto(b)
	if err != nil {
		// go-sev-guest's format errors can carry hex dumps of whole
		// reserved areas.
		return nil, errors.New(textclip.Clip(err.Error(), 160))
	}
	return r, nil
}

// SplitExtendedReport splits an extended report (report || certificate
// table, as SNP_GET_EXT_REPORT and configfs-tsm return it) into its parts.
// A plain report gives a nil table.
func SplitExtendedReport(b []byte) (report, certTable []byte, err error) {
	if len(b) < ReportSize {
		return nil, nil, fmt.Errorf("report is %d bytes, want at least %d", len(b), ReportSize)
	}
	if len(b) == ReportSize {
		return b, nil, nil
	}
	return b[:ReportSize], b[ReportSize:], nil
}

// checkSignature checks the ECDSA P-384 signature over raw[0:SignedSize]
// with pub. It looks at nothing else in the report, so that any change to
// the signed bytes, reserved fields included, is reported as a signature
// failure.
func checkSignature(raw []byte, pub *ecdsa.PublicKey) error {
	sig := raw[SignedSize:]
	r := leInt(sig[:snpreport.SigComponentSize])
	s := leInt(sig[snpreport.SigComponentSize : 2*snpreport.SigComponentSize])
	digest := sha512.Sum384(raw[:SignedSize])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return errors.New("ECDSA P-384 verification failed")
	}
	return nil
}

// leInt reads a little-endian unsigned integer.
func leInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	return new(big.Int).SetBytes(be)
}

// decodeTCB splits a raw TCB_VERSION in the layout of the product line:
// [bl,tee,0,0,0,0,snp,ucode] on Milan and Genoa, [fmc,bl,tee,snp,0,0,0,ucode]
// on Turin.
func decodeTCB(v uint64, productLine string) (attest.TCB, error) {
	t, err := snpreport.TCBFromUint64(v, productLine == "Turin")
	if err != nil {
		return attest.TCB{}, err
	}
	return *t, nil
}

// firmwareVersion renders major.minor.build as AMD writes it.
func firmwareVersion(major, minor, build uint32) string {
	return fmt.Sprintf("%d.%d.%d", major, minor, build)
}
