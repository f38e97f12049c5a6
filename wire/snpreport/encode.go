package snpreport

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
)

// Encode renders a raw SNP report and its GHCB certificate table (may be
// nil) as a Trustee primary_evidence object, the inverse of Decode. It
// refuses reports that the JSON form cannot carry faithfully: a wrong size,
// an unsupported version, an unknown product, or non-zero reserved bytes.
func Encode(report []byte, certTable []byte) ([]byte, error) {
	if len(report) != ReportSize {
		return nil, fmt.Errorf("snp report is %d bytes, want %d", len(report), ReportSize)
	}
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(report[off:]) }
	le64 := func(off int) uint64 { return binary.LittleEndian.Uint64(report[off:]) }

	version := le32(OffVersion)
	if version < MinReportVersion || version > MaxReportVersion {
		return nil, fmt.Errorf("snp report version %d not supported (want %d to %d)", version,
			MinReportVersion, MaxReportVersion)
	}
	for _, rg := range reserved {
		if err := mustBeZero(report, rg[0], rg[1]); err != nil {
			return nil, err
		}
	}
	j := reportJSON{
		Version:   version,
		GuestSVN:  le32(OffGuestSVN),
		Policy:    le64(OffPolicy),
		VMPL:      le32(OffVMPL),
		SigAlgo:   le32(OffSigAlgo),
		PlatInfo:  le64(OffPlatInfo),
		KeyInfo:   le32(OffKeyInfo),
		Current:   versionJSON{Major: report[OffCurrentBuild+2], Minor: report[OffCurrentBuild+1], Build: report[OffCurrentBuild]},
		Committed: versionJSON{Major: report[OffCommittedBuild+2], Minor: report[OffCommittedBuild+1], Build: report[OffCommittedBuild]},
		Signature: signatureJSON{
			R: byteArray(report[OffSignatureR : OffSignatureR+SigComponentSize]),
			S: byteArray(report[OffSignatureS : OffSignatureS+SigComponentSize]),
		},
	}
	arrays := map[string]*byteArray{
		"family_id": &j.FamilyID, "image_id": &j.ImageID, "report_data": &j.ReportData,
		"measurement": &j.Measurement, "host_data": &j.HostData, "id_key_digest": &j.IDKeyDigest,
		"author_key_digest": &j.AuthorKeyDigest, "report_id": &j.ReportID, "report_id_ma": &j.ReportIDMA,
		"chip_id": &j.ChipID,
	}
	for _, f := range byteFields {
		*arrays[f.name] = byteArray(report[f.off : f.off+f.size])
	}

	product := ProductUnknown
	if version >= 3 {
		fam, mod, step := report[OffCPUIDFam], report[OffCPUIDMod], report[OffCPUIDStep]
		p, err := ProductFromCPUID(fam, mod)
		if err != nil {
			return nil, fmt.Errorf("snp report: %w", err)
		}
		product = p
		j.CPUIDFamID, j.CPUIDModID, j.CPUIDStep = &fam, &mod, &step
	} else if err := mustBeZero(report, OffCPUIDFam, OffCPUIDStep+1); err != nil {
		return nil, err
	}

	tcbs := map[string]*tcbJSON{
		"current_tcb": &j.CurrentTCB, "reported_tcb": &j.ReportedTCB,
		"committed_tcb": &j.CommittedTCB, "launch_tcb": &j.LaunchTCB,
	}
	for _, f := range tcbFields {
		t, err := tcbFrom(report[f.off:f.off+8], product)
		if err != nil {
			return nil, fmt.Errorf("snp report %s: %w", f.name, err)
		}
		out := tcbJSON{Bootloader: t.Bootloader, TEE: t.TEE, SNP: t.SNP, Microcode: t.Microcode}
		if product.turinLayout() {
			fmc := t.FMC
			out.FMC = &fmc
		}
		*tcbs[f.name] = out
	}

	if version >= 5 {
		lmv, cmv := le64(OffLaunchMitVector), le64(OffCurrentMitVector)
		j.LaunchMitVector, j.CurrentMitVector = &lmv, &cmv
	} else if err := mustBeZero(report, OffLaunchMitVector, OffCurrentMitVector+8); err != nil {
		return nil, err
	}

	chain, err := encodeCertTable(certTable)
	if err != nil {
		return nil, err
	}
	return json.Marshal(evidenceJSON{Report: j, CertChain: chain})
}

func mustBeZero(b []byte, lo, hi int) error {
	for i := lo; i < hi; i++ {
		if b[i] != 0 {
			return fmt.Errorf("snp report byte %#x is %#x, want 0 (reserved in this report version)", i, b[i])
		}
	}
	return nil
}

// encodeCertTable turns a GHCB certificate table into cert_chain entries, in
// table order. It bounds-checks every entry itself.
func encodeCertTable(table []byte) ([]certJSON, error) {
	if len(table) == 0 {
		return nil, nil
	}
	names := map[guid]string{}
	for name, g := range certTypeGUIDs {
		names[mustGUID(g)] = name
	}
	var out []certJSON
	for i := 0; ; i++ {
		h := i * certTableEntrySize
		if h+certTableEntrySize > len(table) {
			return nil, fmt.Errorf("certificate table entry %d: header runs past the %d-byte table (no terminating entry)", i, len(table))
		}
		var g guid
		copy(g[:], table[h:h+16])
		off := uint64(binary.LittleEndian.Uint32(table[h+16:]))
		n := uint64(binary.LittleEndian.Uint32(table[h+20:]))
		if g == zeroGUID && off == 0 && n == 0 {
			break
		}
		if off+n > uint64(len(table)) || n == 0 {
			return nil, fmt.Errorf("certificate table entry %d (%s): range %d+%d outside the %d-byte table", i, g, off, n, len(table))
		}
		var typ any = map[string]string{"OTHER": g.String()}
		if name, ok := names[g]; ok {
			typ = name
		}
		out = append(out, certJSON{CertType: typ, Data: byteArray(table[off : off+n])})
	}
	return out, nil
}

// The types below fix the key order of the sev crate's serde output.

type evidenceJSON struct {
	Report    reportJSON `json:"attestation_report"`
	CertChain []certJSON `json:"cert_chain"` // nil → null
}

type certJSON struct {
	CertType any       `json:"cert_type"`
	Data     byteArray `json:"data"`
}

type reportJSON struct {
	Version          uint32        `json:"version"`
	GuestSVN         uint32        `json:"guest_svn"`
	Policy           uint64        `json:"policy"`
	FamilyID         byteArray     `json:"family_id"`
	ImageID          byteArray     `json:"image_id"`
	VMPL             uint32        `json:"vmpl"`
	SigAlgo          uint32        `json:"sig_algo"`
	CurrentTCB       tcbJSON       `json:"current_tcb"`
	PlatInfo         uint64        `json:"plat_info"`
	KeyInfo          uint32        `json:"key_info"`
	ReportData       byteArray     `json:"report_data"`
	Measurement      byteArray     `json:"measurement"`
	HostData         byteArray     `json:"host_data"`
	IDKeyDigest      byteArray     `json:"id_key_digest"`
	AuthorKeyDigest  byteArray     `json:"author_key_digest"`
	ReportID         byteArray     `json:"report_id"`
	ReportIDMA       byteArray     `json:"report_id_ma"`
	ReportedTCB      tcbJSON       `json:"reported_tcb"`
	CPUIDFamID       *uint8        `json:"cpuid_fam_id"`
	CPUIDModID       *uint8        `json:"cpuid_mod_id"`
	CPUIDStep        *uint8        `json:"cpuid_step"`
	ChipID           byteArray     `json:"chip_id"`
	CommittedTCB     tcbJSON       `json:"committed_tcb"`
	Current          versionJSON   `json:"current"`
	Committed        versionJSON   `json:"committed"`
	LaunchTCB        tcbJSON       `json:"launch_tcb"`
	LaunchMitVector  *uint64       `json:"launch_mit_vector"`
	CurrentMitVector *uint64       `json:"current_mit_vector"`
	Signature        signatureJSON `json:"signature"`
}

type tcbJSON struct {
	FMC        *uint8 `json:"fmc"`
	Bootloader uint8  `json:"bootloader"`
	TEE        uint8  `json:"tee"`
	SNP        uint8  `json:"snp"`
	Microcode  uint8  `json:"microcode"`
}

type versionJSON struct {
	Major uint8 `json:"major"`
	Minor uint8 `json:"minor"`
	Build uint8 `json:"build"`
}

type signatureJSON struct {
	R byteArray `json:"r"`
	S byteArray `json:"s"`
}

// byteArray marshals as a JSON array of integers, as serde does for [u8; N]
// (encoding/json would write base64).
type byteArray []byte

func (b byteArray) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+4*len(b))
	out = append(out, '[')
	for i, v := range b {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(v), 10)
	}
	return append(out, ']'), nil
}
