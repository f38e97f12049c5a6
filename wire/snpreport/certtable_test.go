package snpreport

import (
	"bytes"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/uuid"
)

// TestConstantsMatchGoSevGuest: the values this package defines for itself
// are go-sev-guest's.
func TestConstantsMatchGoSevGuest(t *testing.T) {
	for name, p := range map[string][2]string{
		"ARK": {ArkGUID, abi.ArkGUID}, "ASK": {AskGUID, abi.AskGUID},
		"VCEK": {VcekGUID, abi.VcekGUID}, "VLEK": {VlekGUID, abi.VlekGUID},
	} {
		if p[0] != p[1] {
			t.Errorf("%s GUID %s, go-sev-guest %s", name, p[0], p[1])
		}
	}
	if MinReportVersion != abi.MinSupportedReportVersion || MaxReportVersion != abi.MaxSupportedReportVersion {
		t.Errorf("report versions %d-%d, go-sev-guest %d-%d", MinReportVersion, MaxReportVersion, abi.MinSupportedReportVersion, abi.MaxSupportedReportVersion)
	}
	if certTableEntrySize != abi.CertTableEntrySize {
		t.Errorf("entry size %d, go-sev-guest %d", certTableEntrySize, abi.CertTableEntrySize)
	}
}

// TestMarshalCertTableMatchesGoSevGuest: byte for byte the table
// go-sev-guest's CertTable.Marshal lays out, and it parses back.
func TestMarshalCertTableMatchesGoSevGuest(t *testing.T) {
	entries := []certEntry{
		{mustGUID(VcekGUID), bytes.Repeat([]byte{1}, 1300)},
		{mustGUID(AskGUID), bytes.Repeat([]byte{2}, 1600)},
		{mustGUID(CRLGUID), []byte{3, 4, 5}},
	}
	ref := &abi.CertTable{}
	for _, e := range entries {
		ref.Entries = append(ref.Entries, abi.CertTableEntry{GUID: uuid.UUID(e.guid), RawCert: e.cert})
	}
	got := marshalCertTable(entries)
	if !bytes.Equal(got, ref.Marshal()) {
		t.Fatal("certificate table differs from go-sev-guest's")
	}
	back := new(abi.CertTable)
	if err := back.Unmarshal(got); err != nil || len(back.Entries) != 3 {
		t.Fatalf("go-sev-guest reads back %d entries: %v", len(back.Entries), err)
	}
	if marshalCertTable(nil) != nil {
		t.Fatal("no entries: want no table")
	}
}

// TestGUIDMatchesUUID: parseGUID and String agree with google/uuid on the
// hyphenated form, and refuse what is not exactly that form.
func TestGUIDMatchesUUID(t *testing.T) {
	for _, s := range []string{ArkGUID, AskGUID, VcekGUID, VlekGUID, CRLGUID, "C0B406A4-A803-4952-9743-3FB6014CD0AE", "00000000-0000-0000-0000-000000000000"} {
		g, err := parseGUID(s)
		ref, refErr := uuid.Parse(s)
		if err != nil || refErr != nil || g != guid(ref) || g.String() != ref.String() {
			t.Errorf("%s: %s %v; uuid %s %v", s, g, err, ref, refErr)
		}
	}
	for _, s := range []string{"", "c0b406a4a8034952 97433fb6014cd0ae", "c0b406a4-a803-4952-9743-3fb6014cd0a", "c0b406a4-a803-4952-9743_3fb6014cd0ae",
		"g0b406a4-a803-4952-9743-3fb6014cd0ae", "c0b406a4-a803-4952-9743-3fb6014cd0aeX", "{c0b406a4-a803-4952-9743-3fb6014cd0ae}"} {
		if g, err := parseGUID(s); err == nil {
			t.Errorf("%q parsed as %s", s, g)
		}
	}
}
