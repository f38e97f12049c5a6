package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/sealroot/sealroot/guest/agent"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

func TestAgentConfig(t *testing.T) {
	full := &diskconfig.Config{TEE: "sim", TEEData: `{"gen":"genoa"}`, WorkloadID: "wl-1", CPUs: 1, RAMMiB: 512,
		AttestationURL: "http://10.0.2.100:8080", KBSProtocol: "trustee", CABundle: "-----BEGIN CERTIFICATE-----",
		AttestTimeout: "90s", KBSResource: "default/wl-1/passphrase", KBSKey: "rsa"}
	for _, tc := range []struct {
		name string
		cfg  *diskconfig.Config
		want agent.Config
	}{
		{"every field", full, agent.Config{TEE: "sim", TEEData: `{"gen":"genoa"}`, WorkloadID: "wl-1",
			AttestationURL: "http://10.0.2.100:8080", KBSProtocol: "trustee", CABundle: "-----BEGIN CERTIFICATE-----",
			AttestTimeout: 90 * time.Second}},
		{"defaults", &diskconfig.Config{TEE: "snp", WorkloadID: "w", AttestationURL: "vsock://2:1024"},
			agent.Config{TEE: "snp", WorkloadID: "w", AttestationURL: "vsock://2:1024", AttestTimeout: 60 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := agentConfig(tc.cfg)
			if *got != tc.want {
				t.Fatalf("agentConfig = %+v, want %+v", *got, tc.want)
			}
			if got.Dialect() != tc.cfg.Dialect() || got.Deadline() != tc.cfg.Deadline() {
				t.Fatalf("dialect %s/%s, deadline %s/%s differ between agent and disk config", got.Dialect(), tc.cfg.Dialect(), got.Deadline(), tc.cfg.Deadline())
			}
		})
	}
	// A field added to agent.Config must be filled from the disk config:
	// the full config leaves none of them zero.
	v := reflect.ValueOf(*agentConfig(full))
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("agentConfig leaves agent.Config.%s unset", v.Type().Field(i).Name)
		}
	}
}
