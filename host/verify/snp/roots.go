package snp

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-sev-guest/verify/trust"
)

// productLines are the SNP product lines go-sev-guest knows.
var productLines = []string{"Milan", "Genoa", "Turin"}

// amdRoots returns AMD's roots as embedded in go-sev-guest, for VCEK and
// VLEK reports alike. go-sev-guest's own default holds only the VCEK
// chains (ARK and ASK); here the ASVK that certifies VLEKs is added to the
// same root, since both chains end in the same ARK.
var amdRoots = sync.OnceValues(func() (map[string][]*trust.AMDRootCerts, error) {
	bundles := map[string][2][]byte{
		"Milan": {trust.AskArkMilanVcekBytes, trust.AskArkMilanVlekBytes},
		"Genoa": {trust.AskArkGenoaVcekBytes, trust.AskArkGenoaVlekBytes},
		"Turin": {trust.AskArkTurinVcekBytes, trust.AskArkTurinVlekBytes},
	}
	out := map[string][]*trust.AMDRootCerts{}
	for line, b := range bundles {
		ask, ark, err := parseBundle(b[0])
		if err != nil {
			return nil, fmt.Errorf("embedded %s VCEK roots: %w", line, err)
		}
		asvk, ark2, err := parseBundle(b[1])
		if err != nil {
			return nil, fmt.Errorf("embedded %s VLEK roots: %w", line, err)
		}
		root := trust.AMDRootCertsProduct(line)
		root.ProductCerts = &trust.ProductCerts{Ask: ask, Ark: ark}
		out[line] = []*trust.AMDRootCerts{root}
		if ark2.Equal(ark) {
			root.ProductCerts.Asvk = asvk
		} else {
			vlek := trust.AMDRootCertsProduct(line)
			vlek.ProductCerts = &trust.ProductCerts{Asvk: asvk, Ark: ark2}
			out[line] = append(out[line], vlek)
		}
	}
	return out, nil
})

// parseBundle parses a KDS cert_chain body: the intermediate then the ARK,
// as PEM. Unlike kds.ParseProductCertChain it allows trailing white space,
// which one of go-sev-guest's embedded bundles has.
func parseBundle(pems []byte) (ica, ark *x509.Certificate, err error) {
	var certs []*x509.Certificate
	rest := pems
	for len(certs) < 2 {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil || blk.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("want 2 PEM certificates, found %d", len(certs))
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, err
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, errors.New("trailing data after the ARK")
	}
	return certs[0], certs[1], nil
}
