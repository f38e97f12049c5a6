// Package event is the contract between the guest init and the host: the
// structured events the init sends (phase timings, errors, the final exit
// status), their wire form, and the exit statuses the launcher returns when
// the workload could not run.
//
// The wire form is one JSON object per line. The init writes them to the
// virtio-serial port named PortName (QEMU) or to vsock port VsockPort on the
// host (libkrun), and always prints the final status on the console as a
// line starting with ConsolePrefix, the last-resort channel.
//
// Events carry no secrets: an error message is built by the init from
// wrapped errors that never include passphrases, keys or tokens.
package event

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

const (
	// PortName is the virtio-serial port name the init looks for in
	// /sys/class/virtio-ports/*/name.
	PortName = "org.sealroot.host"
	// VsockPort is the host vsock port the init dials under libkrun
	// (krun_add_vsock_port maps it to a host Unix socket).
	VsockPort = 1025
	// ConsolePrefix starts the console line that repeats the final status.
	ConsolePrefix = "sealroot: exit-status "
	// MaxLine bounds one event line; longer lines are rejected by readers.
	MaxLine = 64 << 10
)

// Kinds of event.
const (
	KindPhase = "phase" // a boot phase finished (OK or not)
	KindLog   = "log"   // an informational line
	KindError = "error" // the boot failed in Phase
	KindExit  = "exit"  // the final status; always the last event
)

// Event is one line of the host channel.
type Event struct {
	Kind string `json:"kind"`
	// Phase names the boot phase (see the init's phase list).
	Phase string `json:"phase,omitempty"`
	// Millis is the phase's duration; for an exit event, the time since
	// PID 1 started.
	Millis float64 `json:"ms,omitempty"`
	// SinceStartMillis is when the phase ended, relative to PID 1 start.
	SinceStartMillis float64 `json:"at_ms,omitempty"`
	Message          string  `json:"msg,omitempty"`
	// Status is the exit status for exit and error events.
	Status int `json:"status,omitempty"`
	// Detail holds optional phase figures (bytes read, modules loaded...).
	Detail map[string]string `json:"detail,omitempty"`
}

// Marshal returns the event's wire form, newline-terminated.
func (e Event) Marshal() []byte {
	b, err := json.Marshal(e)
	if err != nil { // cannot happen for this type
		panic(err)
	}
	return append(b, '\n')
}

// Parse decodes one wire line.
func Parse(line []byte) (Event, error) {
	var e Event
	if len(line) > MaxLine {
		return e, fmt.Errorf("event line of %d bytes exceeds %d", len(line), MaxLine)
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("decoding event: %w", err)
	}
	switch e.Kind {
	case KindPhase, KindLog, KindError, KindExit:
	default:
		return e, fmt.Errorf("unknown event kind %q", e.Kind)
	}
	if e.Status < 0 || e.Status > 255 {
		return e, fmt.Errorf("event status %d out of range 0-255", e.Status)
	}
	return e, nil
}

// ConsoleLine is the final console line for status.
func ConsoleLine(status int) string { return ConsolePrefix + strconv.Itoa(status) }

// ParseConsoleLine recognises a final console line and returns its status.
func ParseConsoleLine(line string) (int, bool) {
	line = strings.TrimRight(line, "\r\n")
	i := strings.Index(line, ConsolePrefix)
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[i+len(ConsolePrefix):]))
	if err != nil || n < 0 || n > 255 {
		return 0, false
	}
	return n, true
}

// Exit statuses reported when the workload did not run. The workload's own
// status (0-255, 128+N for signal N) is passed through unchanged; these are
// all >= 200 so that scripts can tell a boot failure from common workload
// statuses. They are part of the public CLI contract (README, "Exit status").
const (
	StatusLaunchFailed   = 200 // the launcher could not start the VM (bad flags, QEMU missing)
	StatusBootFailed     = 201 // the guest stopped without reporting a status (kernel panic, init crash)
	StatusTimeout        = 202 // --timeout elapsed; the VM was stopped
	StatusNoRootDisk     = 203 // /dev/vda never appeared
	StatusBadConfig      = 204 // KRUN footer or config JSON missing, corrupt or invalid
	StatusAttestFailed   = 205 // the TEE gave no evidence (device missing, sim port absent)
	StatusBrokerRefused  = 206 // the broker refused attestation or the key, or was unreachable
	StatusUnlockFailed   = 207 // LUKS unlock or dm-crypt setup failed (wrong passphrase, bad header)
	StatusMountFailed    = 208 // the root filesystem could not be mounted or switched to
	StatusBadWorkload    = 209 // /.krun_config.json invalid, or user/cwd unusable
	StatusInterrupted    = 210 // the launcher was interrupted (SIGINT/SIGTERM)
	StatusModulesFailed  = 211 // a required kernel module failed to load
	StatusEarlySetup     = 212 // mounting /proc, /sys, /dev or /run failed
	StatusVolumeMismatch = 213 // the root volume is not the one the disk config binds (root_volume)
	StatusSealFailed     = 214 // the TEE could not be closed to the workload (guest/internal/seal)
	StatusIntegrity      = 215 // the verity root does not match its attested root hash (a changed or replayed block)
	StatusWorkloadSignal = 128 // base for a workload killed by signal N: 128+N
)

// StatusText names a boot-failure status for the README and the launcher.
func StatusText(s int) string {
	switch s {
	case StatusLaunchFailed:
		return "launch failed"
	case StatusBootFailed:
		return "guest stopped without a status"
	case StatusTimeout:
		return "timeout"
	case StatusNoRootDisk:
		return "root disk not found"
	case StatusBadConfig:
		return "invalid disk config"
	case StatusAttestFailed:
		return "attestation evidence unavailable"
	case StatusBrokerRefused:
		return "broker refused or unreachable"
	case StatusUnlockFailed:
		return "unlock failed"
	case StatusMountFailed:
		return "mount or switch_root failed"
	case StatusBadWorkload:
		return "invalid workload config"
	case StatusInterrupted:
		return "interrupted"
	case StatusModulesFailed:
		return "kernel module load failed"
	case StatusEarlySetup:
		return "early setup failed"
	case StatusVolumeMismatch:
		return "root volume not the one the config binds"
	case StatusSealFailed:
		return "sealing the TEE failed"
	case StatusIntegrity:
		return "root integrity violation"
	}
	return ""
}
