package main

// The tdx and cca backends of `sealroot verify` (the command itself is in
// cmd_verify.go).
//
// tdx: --evidence is a raw v4 quote, or Trustee's TDX evidence JSON
// {"quote":"<base64>","cc_eventlog":"<base64>"|null}. Collateral (TCB info,
// QE identity, CRLs) comes from --cache-dir or Intel PCS; with --offline and
// no cached collateral only the signature and PCK chain are checked, which
// the output states in its "collateral" and "verdict" lines (and the JSON
// in "warning"). The broker never accepts such a check (verify.Broker).
//
// cca: --evidence is the CBOR token as the guest read it from configfs-tsm,
// --certs a PEM file of trusted CPAK public keys (PUBLIC KEY or CERTIFICATE
// blocks). There is no built-in CCA trust anchor, so --certs is required.

import (
	"fmt"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/host/verify/cca"
)

// tdxChainOnlyWarning qualifies "genuine" for a quote verified without
// collateral (--offline --allow-chain-only, nothing cached).
const tdxChainOnlyWarning = "signature and PCK chain only: TCB status, QE identity and revocation NOT checked"

// newTDXVerifier is the Verifier of --tee tdx.
func newTDXVerifier(f verifyFlags) (attest.Verifier, error) {
	cache, err := f.openCache()
	if err != nil {
		return nil, err
	}
	return verify.New(attest.TEETDX, verify.Options{Cache: cache, Offline: f.offline, TDXChainOnly: f.chainOnly, Now: f.now})
}

// newCCAVerifier is the Verifier of --tee cca, trusting the CPAKs in --certs.
func newCCAVerifier(f verifyFlags) (attest.Verifier, error) {
	if f.certsPath == "" {
		return nil, usageError("--tee cca needs --certs FILE: the PEM public keys (CPAKs) of the platforms you trust")
	}
	b, err := f.readCerts()
	if err != nil {
		return nil, err
	}
	keys, err := cca.ParseCPAKs(b)
	if err != nil {
		return nil, fmt.Errorf("certificates %s: %w", f.certsPath, err)
	}
	return verify.New(attest.TEECCA, verify.Options{CCACPAKs: keys})
}

// loadCCAEvidence reads the CCA token.
func loadCCAEvidence(f verifyFlags) (*attest.Evidence, error) {
	b, err := f.readEvidence()
	if err != nil {
		return nil, err
	}
	// --certs holds trust anchors, read by the verifier; it is never part
	// of the evidence.
	return &attest.Evidence{TEE: attest.TEECCA, Report: b}, nil
}

// loadTDXEvidence reads a raw quote or Trustee's TDX evidence JSON.
func loadTDXEvidence(f verifyFlags) (*attest.Evidence, error) {
	if f.certsPath != "" {
		return nil, usageError("--certs is not used with --tee tdx: the PCK chain is inside the quote")
	}
	b, err := f.readEvidence()
	if err != nil {
		return nil, err
	}
	quote, log, err := tdxEvidenceFromFile(b, f.format)
	if err != nil {
		return nil, fmt.Errorf("evidence %s: %w", f.evidencePath, err)
	}
	return &attest.Evidence{TEE: attest.TEETDX, Report: quote, EventLog: log}, nil
}
