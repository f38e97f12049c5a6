package main

import (
	"github.com/sealroot/sealroot/guest/agent"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// agentConfig turns the disk config into what the agent needs of it: the
// agent does not read the disk config (it does not import its package),
// the init tells it which workload, broker, dialect and TEE.
func agentConfig(c *diskconfig.Config) *agent.Config {
	return &agent.Config{
		TEE:            c.TEE,
		TEEData:        c.TEEData,
		WorkloadID:     c.WorkloadID,
		AttestationURL: c.AttestationURL,
		KBSProtocol:    c.KBSProtocol,
		CABundle:       c.CABundle,
		AttestTimeout:  c.Deadline(),
	}
}
