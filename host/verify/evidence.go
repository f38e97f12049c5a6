package verify

import (
	"fmt"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/internal/textclip"
	"github.com/sealroot/sealroot/wire/kbs"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// DecodeTrustee decodes the Trustee dialect's primary_evidence object for
// wire TEE tee (attest.TEEInfo.Wire) into the Evidence its verifier takes:
// the sev crate's serde form for snp, {"quote","cc_eventlog"} for tdx,
// {"token":[...]} for cca. The broker decodes what guests send with it and
// `sealroot verify --format trustee` the files it is given. Errors are the
// decoders' own; callers say where the bytes came from.
func DecodeTrustee(tee string, primary []byte) (*attest.Evidence, error) {
	switch tee {
	case attest.TEESNP:
		ev, err := snpreport.Decode(primary)
		if err != nil {
			return nil, err
		}
		ev.TEE = attest.TEESNP
		return ev, nil
	case attest.TEETDX:
		quote, log, err := kbs.DecodeTDXEvidence(primary)
		if err != nil {
			return nil, err
		}
		return &attest.Evidence{TEE: attest.TEETDX, Report: quote, EventLog: log}, nil
	case attest.TEECCA:
		tok, err := kbs.DecodeCCAEvidence(primary)
		if err != nil {
			return nil, err
		}
		return &attest.Evidence{TEE: attest.TEECCA, Report: tok}, nil
	}
	return nil, fmt.Errorf("tee %q has no evidence decoder", textclip.Clip(tee, 80))
}
