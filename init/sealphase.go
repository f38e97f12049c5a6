package main

import (
	"context"
	"strings"

	"github.com/sealroot/sealroot/attest/simport"
	"github.com/sealroot/sealroot/init/seal"
	"github.com/sealroot/sealroot/init/vport"
)

// sealTEE runs after the workload's config is read and before it starts:
// in a confidential boot (the config names a TEE, or the VM has one),
// the TEE's report interfaces go away and the bounding set loses what
// would bring them back (package seal). A boot with tee none and no TEE
// has no key to protect and is left as it is.
func (b *boot) sealTEE(ctx context.Context) error {
	_, simErr := vport.Find(simport.PortName)
	if b.cfg.TEE == "none" && teeDevice() == "" && simErr != nil {
		b.detail = map[string]string{"sealed": "false"}
		return nil
	}
	o := seal.Default()
	o.Ports = []string{simport.PortName}
	r, err := seal.Seal(o)
	if err != nil {
		return err
	}
	b.report.Log("seal", "TEE closed to the workload: %s", r)
	b.detail = map[string]string{"sealed": "true", "lockdown": r.Lockdown, "removed": strings.Join(r.Removed, " ")}
	return nil
}
