package main

import (
	"github.com/sealroot/sealroot/agent"
	"github.com/sealroot/sealroot/init/config"
)

// agentConfig turns the disk config into what the agent needs of it: the
// agent does not read the disk config (it does not import its package),
// the init tells it which workload, broker, dialect and TEE.
func agentConfig(c *config.Config) *agent.Config {
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
