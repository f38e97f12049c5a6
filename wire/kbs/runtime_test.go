package kbs

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

func TestRuntimeReportDataIsNeverABootBinding(t *testing.T) {
	rd := RuntimeReportData([]byte("the workload's own data"))
	if !IsRuntimeReportData(rd[:]) {
		t.Fatal("a runtime report_data is not recognised")
	}
	if rd == RuntimeReportData([]byte("other data")) {
		t.Fatal("report_data does not depend on the data")
	}
	// The strongest try: the workload asks for a report over exactly the
	// binding a boot handshake needs. The report_data it gets is not it.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	boot := KrunReportData("nonce-from-the-broker", &key.PublicKey)
	if IsRuntimeReportData(boot[:]) {
		t.Fatal("a krun boot binding looks like runtime evidence")
	}
	if RuntimeReportData(boot[:]) == boot {
		t.Fatal("runtime report_data equals the boot binding it was asked for")
	}
	tb := TrusteeReportData("nonce", JWK{Kty: "EC", Crv: "P-256", X: "x", Y: "y"}, "", 64)
	if IsRuntimeReportData(tb) {
		t.Fatal("a Trustee boot binding looks like runtime evidence")
	}
}
