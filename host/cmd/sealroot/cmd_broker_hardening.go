package main

import (
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/verify/policy"
)

// checkBrokerHardeningFlags turns bad values of the hardening flags of
// `sealroot broker` into usage errors (exit 2).
func checkBrokerHardeningFlags(o *broker.Options) error {
	switch o.PendingSessions {
	case "auto", broker.PendingMemory, broker.PendingShared:
	default:
		return usageError("--pending-sessions %q: want auto, memory or store", o.PendingSessions)
	}
	if o.MaxPendingSessions < 1 {
		return usageError("--max-pending-sessions %d: want at least 1", o.MaxPendingSessions)
	}
	if o.MaxPendingPerClient < 0 {
		return usageError("--max-pending-per-client %d: want at least 1 (0: a tenth of --max-pending-sessions)", o.MaxPendingPerClient)
	}
	if o.RateLimit < 0 || o.RateBurst < 0 {
		return usageError("--rate-limit and --rate-burst cannot be negative (0 turns the limit off)")
	}
	if o.MinTCB != "" {
		if _, err := policy.ParseTCB(o.MinTCB); err != nil {
			return usageError("--min-tcb: %v", err)
		}
	}
	if o.AdminListen != "" && o.AdminListen == o.Listen {
		return usageError("--admin-listen %s is --listen: give the admin API an address of its own", o.AdminListen)
	}
	return nil
}
