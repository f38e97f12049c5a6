package snp

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify/testdata"
	"github.com/google/go-sev-guest/verify/trust"
	"github.com/google/uuid"

	"github.com/sealroot/sealroot/wire/snpreport"
)

func TestCertTableRoundTrip(t *testing.T) {
	in := []CertEntry{
		{GUID: GUIDARK, Data: []byte("ark")},
		{GUID: GUIDASK, Data: []byte("ask!")},
		{GUID: GUIDVCEK, Data: testdata.VcekBytes},
		{GUID: uuid.MustParse(abi.ExtraPlatformInfoGUID), Data: []byte{}},
	}
	b := MarshalCertTable(in)
	out, err := ParseCertTable(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d entries, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].GUID != in[i].GUID || !bytes.Equal(out[i].Data, in[i].Data) {
			t.Errorf("entry %d differs", i)
		}
	}
	// go-sev-guest reads our tables the same way.
	var gt abi.CertTable
	if err := gt.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if v, _ := gt.GetByGUIDString(abi.VcekGUID); !bytes.Equal(v, testdata.VcekBytes) {
		t.Error("go-sev-guest finds a different VCEK")
	}
	if MarshalCertTable(nil) != nil {
		t.Error("an empty table is not nil")
	}
	if e, err := ParseCertTable(nil); e != nil || err != nil {
		t.Errorf("ParseCertTable(nil) = %v, %v", e, err)
	}
}

func TestParseCertTableRejects(t *testing.T) {
	header := func(g uuid.UUID, off, n uint32) []byte {
		h := make([]byte, certTableEntrySize)
		copy(h, g[:])
		binary.LittleEndian.PutUint32(h[16:], off)
		binary.LittleEndian.PutUint32(h[20:], n)
		return h
	}
	term := make([]byte, certTableEntrySize)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"no terminator", header(GUIDVCEK, 24, 0), "no terminating entry"},
		{"offset past the end", cat(header(GUIDVCEK, 48, 10), term), "past the table"},
		// go-sev-guest's own parser adds offset and length in 32 bits and
		// panics on this one.
		{"offset+length wraps 32 bits", cat(header(GUIDVCEK, 0xFFFFFFF0, 0x20), term, make([]byte, 16)), "past the table"},
		{"data inside the headers", cat(header(GUIDVCEK, 0, 10), term), "points into the headers"},
		{"duplicate GUID", cat(header(GUIDVCEK, 72, 1), header(GUIDVCEK, 72, 1), term, []byte{0}), "twice"},
		{"too large", make([]byte, MaxCertTableSize+1), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCertTable(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseCertTable = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	var many []byte
	for range maxCertTableEntries + 1 {
		many = append(many, header(uuid.New(), 0, 0)...)
	}
	many = append(many, term...)
	if _, err := ParseCertTable(many); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("too many entries: %v", err)
	}
}

func TestLoadCerts(t *testing.T) {
	roots, err := amdRoots()
	if err != nil {
		t.Fatal(err)
	}
	milan := roots["Milan"][0].ProductCerts
	pemOf := func(ders ...[]byte) []byte {
		var b []byte
		for _, d := range ders {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		return b
	}
	table := MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: testdata.VcekBytes}})
	tests := []struct {
		name  string
		in    []byte
		want  map[uuid.UUID][]byte
		error string
	}{
		{"DER VCEK", testdata.VcekBytes, map[uuid.UUID][]byte{GUIDVCEK: testdata.VcekBytes}, ""},
		{"PEM VCEK", pemOf(testdata.VcekBytes), map[uuid.UUID][]byte{GUIDVCEK: testdata.VcekBytes}, ""},
		{"PEM chain", append([]byte("\n"), pemOf(testdata.VcekBytes, milan.Ask.Raw, milan.Ark.Raw)...),
			map[uuid.UUID][]byte{GUIDVCEK: testdata.VcekBytes, GUIDASK: milan.Ask.Raw, GUIDARK: milan.Ark.Raw}, ""},
		{"KDS cert_chain bundle", trust.AskArkMilanVcekBytes, map[uuid.UUID][]byte{GUIDASK: milan.Ask.Raw, GUIDARK: milan.Ark.Raw}, ""},
		{"certificate table", table, map[uuid.UUID][]byte{GUIDVCEK: testdata.VcekBytes}, ""},
		{"empty", nil, nil, "no certificates"},
		{"two VCEKs", pemOf(testdata.VcekBytes, testdata.VcekBytes), nil, "a second SEV-VCEK"},
		{"a key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), nil, "not a CERTIFICATE"},
		{"trailing junk", append(pemOf(testdata.VcekBytes), "junk"...), nil, "trailing"},
		{"bad DER", []byte{0x30, 1, 2}, nil, "not PEM, DER or a certificate table"},
		{"text", []byte("hello"), nil, "not PEM, DER or a certificate table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := LoadCerts(tt.in)
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("LoadCerts = %v, want an error containing %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			entries, err := ParseCertTable(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(tt.want) {
				t.Fatalf("%d entries, want %d", len(entries), len(tt.want))
			}
			for _, e := range entries {
				if !bytes.Equal(e.Data, tt.want[e.GUID]) {
					t.Errorf("entry %s differs", e.GUID)
				}
			}
		})
	}
}

func TestMergeCertTables(t *testing.T) {
	base := MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: []byte("old")}, {GUID: GUIDASK, Data: []byte("ask")}})
	over := MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: []byte("new")}})
	m, err := MergeCertTables(base, over)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := ParseCertTable(m)
	if got := certFromTable(e, GUIDVCEK); string(got) != "new" {
		t.Errorf("VCEK = %q, want the override", got)
	}
	if got := certFromTable(e, GUIDASK); string(got) != "ask" {
		t.Errorf("ASK = %q, want the base's", got)
	}
	if _, err := MergeCertTables([]byte{1}, over); err == nil {
		t.Error("merged a broken table")
	}
}

func TestParseReport(t *testing.T) {
	r, err := ParseReport(testdata.AttestationBytes)
	if err != nil || r.GetVersion() != 2 {
		t.Fatalf("ParseReport(real) = %v, %v", r, err)
	}
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(testdata.AttestationBytes)
		f(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", testdata.AttestationBytes[:1000], "want 1184"},
		{"version 1", mod(func(b []byte) { b[0] = 1 }), "version 1 is not supported"},
		{"version 6", mod(func(b []byte) { b[0] = 6 }), "version 6"},
		{"signature algorithm 2", mod(func(b []byte) { b[snpreport.OffSigAlgo] = 2 }), "signature algorithm 2"},
		{"policy bit 17 clear", mod(func(b []byte) { b[snpreport.OffPolicy+2] = 0x09 }), "policy"},
		{"reserved byte set", mod(func(b []byte) { b[0x1EB] = 1 }), "mbz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseReport(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) || len(err.Error()) > 250 {
				t.Fatalf("ParseReport = %v, want a short error containing %q", err, tt.want)
			}
		})
	}
	if _, _, err := SplitExtendedReport(make([]byte, 10)); err == nil {
		t.Error("split a 10-byte report")
	}
	rep, table, err := SplitExtendedReport(append(bytes.Clone(testdata.AttestationBytes), 1, 2, 3))
	if err != nil || len(rep) != ReportSize || !bytes.Equal(table, []byte{1, 2, 3}) {
		t.Errorf("SplitExtendedReport = %d, %v, %v", len(rep), table, err)
	}
}

// FuzzParseReport checks the report parsers never panic, the lenient
// header read agrees with the strict parse, and a strictly parsed report
// re-serializes to the same bytes.
func FuzzParseReport(f *testing.F) {
	f.Add(bytes.Clone(testdata.AttestationBytes))
	v3 := bytes.Clone(testdata.AttestationBytes)
	v3[0], v3[snpreport.OffCPUIDFam], v3[snpreport.OffCPUIDFam+1] = 3, 0x19, 0x11
	f.Add(v3)
	f.Add(make([]byte, ReportSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if len(b) == ReportSize {
			h := peekHeader(b)
			if err == nil && (h.version != r.GetVersion() || !bytes.Equal(h.chipID, r.GetChipId()) || h.reportedTCB != r.GetReportedTcb()) {
				t.Fatal("header and strict parse disagree")
			}
		}
		if err != nil {
			return
		}
		back, err := abi.ReportToAbiBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, b) {
			t.Fatal("a strictly parsed report does not re-serialize to its bytes")
		}
	})
}

// FuzzParseCertTable checks the table parser never panics, never returns
// data outside its input, and round-trips what it accepts.
func FuzzParseCertTable(f *testing.F) {
	f.Add(MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: testdata.VcekBytes}, {GUID: GUIDASK, Data: []byte("x")}}))
	f.Add(make([]byte, certTableEntrySize))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 60))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := ParseCertTable(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if len(e.Data) > 0 && !bytes.Contains(b, e.Data) {
				t.Fatal("entry data not from the input")
			}
		}
		again, err := ParseCertTable(MarshalCertTable(entries))
		if err != nil || len(again) != len(entries) {
			t.Fatalf("round trip: %v", err)
		}
		// LoadCerts accepts any non-empty table as-is.
		if len(entries) > 0 {
			if _, err := LoadCerts(b); err != nil && !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
				t.Fatalf("LoadCerts refused a valid table: %v", err)
			}
		}
	})
}

func TestProductLineFromCPUID(t *testing.T) {
	tests := []struct {
		family, model byte
		want          string
	}{
		{0x19, 0x01, "Milan"}, {0x19, 0x0F, "Milan"},
		{0x19, 0x11, "Genoa"}, {0x19, 0xA0, "Genoa"}, {0x19, 0xAF, "Genoa"},
		{0x19, 0x21, ""}, {0x19, 0xB0, ""},
		{0x1A, 0x02, "Turin"}, {0x1A, 0x11, "Turin"}, {0x1A, 0x12, ""},
		{0x17, 0x31, ""}, // Rome: SEV-ES, no SNP reports
	}
	for _, tt := range tests {
		if got := ProductLineFromCPUID(tt.family, tt.model); got != tt.want {
			t.Errorf("ProductLineFromCPUID(%#x, %#x) = %q, want %q", tt.family, tt.model, got, tt.want)
		}
	}
}
