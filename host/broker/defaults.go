package broker

import (
	"fmt"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/policy"
)

// Broker-wide policy defaults (docs/broker.md "Policy defaults"):
//
//   - a guest whose SNP policy allows a migration agent (bit 18), or a
//     migratable TDX TD (TD_ATTRIBUTES bit 29), is refused unless its
//     workload's policy sets allow_migration_agent;
//   - Config.MinTCB, the broker's --min-tcb, is a floor under every snp
//     and sim workload's own min_tcb: a registration may raise it, never
//     lower it.

// withBrokerMinimums returns doc as the broker judges it for a workload of
// TEE tee: its min_tcb raised, component by component, to the broker's
// minimum. TDX and CCA evidence carries no SNP-style TCB (it reads as all
// zeros), so the SNP floor applies to snp and sim workloads only.
func (s *Server) withBrokerMinimums(tee string, doc *WorkloadPolicy) (*WorkloadPolicy, error) {
	floor := s.cfg.MinTCB
	if floor == nil || (tee != attest.TEESNP && tee != attest.TEESim) {
		return doc, nil
	}
	eff := *floor
	if doc.MinTCB != "" {
		own, err := policy.ParseTCB(doc.MinTCB)
		if err != nil {
			return nil, fmt.Errorf("stored policy: %w", err)
		}
		eff = maxTCB(eff, *own)
	}
	out := *doc
	out.MinTCB = policy.FormatTCB(eff)
	return &out, nil
}

// maxTCB is the component-wise maximum of two TCBs.
func maxTCB(a, b attest.TCB) attest.TCB {
	return attest.TCB{
		Bootloader: max(a.Bootloader, b.Bootloader),
		TEE:        max(a.TEE, b.TEE),
		SNP:        max(a.SNP, b.SNP),
		Microcode:  max(a.Microcode, b.Microcode),
		FMC:        max(a.FMC, b.FMC),
	}
}
