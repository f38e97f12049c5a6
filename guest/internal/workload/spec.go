// Package workload turns the container's /.krun_config.json into a process
// and runs it as PID 1's supervised child.
//
// Three shapes of the file are accepted (docs/interop.md §1):
//   - the whole OCI image config, as buildah writes it: Entrypoint, Cmd,
//     Env, WorkingDir and User nested under "config";
//   - an OCI runtime spec fragment: "process" with args, env, cwd, user
//     and rlimits;
//   - the flat form: args/Cmd, Entrypoint, env/Env, cwd/WorkingDir/Cwd,
//     User at the top level.
//
// Keys match case-insensitively, as libkrun's original C init did. argv is
// Entrypoint followed by Cmd (or args); no argv at all means /bin/sh.
package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ConfigPath is where the workload config lives in the new root.
const ConfigPath = "/.krun_config.json"

// MaxConfigSize bounds the config file; it comes from the encrypted disk
// but is parsed by PID 1, so it is still bounded.
const MaxConfigSize = 4 << 20

// Rlimit is one resource limit from an OCI runtime process.
type Rlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

// Spec is the workload process as configured, before user resolution.
type Spec struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`
	// User is the OCI image "User" string (name, uid, name:group, uid:gid).
	User string `json:"user,omitempty"`
	// UID/GID are set by the runtime-spec form (numeric only).
	UID, GID       *uint32  `json:"-"`
	AdditionalGIDs []uint32 `json:"-"`
	Rlimits        []Rlimit `json:"rlimits,omitempty"`
	// Shape names which form was found: "oci-image", "oci-runtime", "flat".
	Shape string `json:"shape"`
}

// DefaultShell runs when the config names no program.
const DefaultShell = "/bin/sh"

// Parse decodes a workload config in any of the three shapes.
func Parse(b []byte) (*Spec, error) {
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("workload config of %d bytes exceeds %d", len(b), MaxConfigSize)
	}
	var top map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&top); err != nil {
		return nil, fmt.Errorf("workload config is not a JSON object: %w", err)
	}
	obj := fold(top)
	s := &Spec{}
	if raw, ok := obj["process"]; ok && !isNull(raw) {
		s.Shape = "oci-runtime"
		if err := s.fromRuntime(raw); err != nil {
			return nil, fmt.Errorf("workload config \"process\": %w", err)
		}
	} else if raw, ok := obj["config"]; ok && !isNull(raw) {
		s.Shape = "oci-image"
		var inner map[string]json.RawMessage
		if err := json.Unmarshal(raw, &inner); err != nil {
			return nil, fmt.Errorf("workload config \"config\": not an object: %w", err)
		}
		if err := s.fromImage(fold(inner), "config."); err != nil {
			return nil, err
		}
	} else {
		s.Shape = "flat"
		if err := s.fromImage(obj, ""); err != nil {
			return nil, err
		}
	}
	if len(s.Args) == 0 {
		s.Args = []string{DefaultShell}
	}
	if s.Cwd == "" {
		s.Cwd = "/"
	}
	if !strings.HasPrefix(s.Cwd, "/") {
		return nil, fmt.Errorf("workload config: working directory %q is not absolute", s.Cwd)
	}
	for _, e := range s.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return nil, fmt.Errorf("workload config: environment entry %q is not KEY=VALUE", e)
		}
	}
	return s, nil
}

// fold lowercases keys; when two keys differ only in case, the
// lexicographically first original spelling wins, deterministically.
func fold(m map[string]json.RawMessage) map[string]json.RawMessage {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]json.RawMessage, len(m))
	for _, k := range keys {
		lk := strings.ToLower(k)
		if _, dup := out[lk]; !dup {
			out[lk] = m[k]
		}
	}
	return out
}

func isNull(r json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(r), []byte("null")) }

// strs decodes a string array; a single string is accepted as one element
// (some tools write "Cmd":"foo").
func strs(r json.RawMessage, key string) ([]string, error) {
	if isNull(r) {
		return nil, nil
	}
	var a []string
	if err := json.Unmarshal(r, &a); err == nil {
		return a, nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err == nil {
		return []string{s}, nil
	}
	return nil, fmt.Errorf("workload config %q: want an array of strings", key)
}

func str(r json.RawMessage, key string) (string, error) {
	if isNull(r) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", fmt.Errorf("workload config %q: want a string", key)
	}
	return s, nil
}

// first returns the value of the first present key.
func first(obj map[string]json.RawMessage, keys ...string) (json.RawMessage, string, bool) {
	for _, k := range keys {
		if v, ok := obj[k]; ok {
			return v, k, true
		}
	}
	return nil, "", false
}

func (s *Spec) fromImage(obj map[string]json.RawMessage, prefix string) error {
	var ep, cmd []string
	var err error
	if v, k, ok := first(obj, "entrypoint"); ok {
		if ep, err = strs(v, prefix+k); err != nil {
			return err
		}
	}
	if v, k, ok := first(obj, "cmd", "args"); ok {
		if cmd, err = strs(v, prefix+k); err != nil {
			return err
		}
	}
	s.Args = append(append([]string{}, ep...), cmd...)
	if v, k, ok := first(obj, "env"); ok {
		if s.Env, err = strs(v, prefix+k); err != nil {
			return err
		}
	}
	if v, k, ok := first(obj, "workingdir", "cwd"); ok {
		if s.Cwd, err = str(v, prefix+k); err != nil {
			return err
		}
	}
	if v, k, ok := first(obj, "user"); ok {
		if s.User, err = str(v, prefix+k); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spec) fromRuntime(raw json.RawMessage) error {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("not an object: %w", err)
	}
	p = fold(p)
	var err error
	if v, ok := p["args"]; ok {
		if s.Args, err = strs(v, "process.args"); err != nil {
			return err
		}
	}
	if v, ok := p["env"]; ok {
		if s.Env, err = strs(v, "process.env"); err != nil {
			return err
		}
	}
	if v, ok := p["cwd"]; ok {
		if s.Cwd, err = str(v, "process.cwd"); err != nil {
			return err
		}
	}
	if v, ok := p["user"]; ok && !isNull(v) {
		var u struct {
			UID            *uint32  `json:"uid"`
			GID            *uint32  `json:"gid"`
			AdditionalGids []uint32 `json:"additionalGids"`
			Username       string   `json:"username"`
		}
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("\"user\": %w", err)
		}
		s.UID, s.GID, s.AdditionalGIDs, s.User = u.UID, u.GID, u.AdditionalGids, u.Username
	}
	if v, ok := p["rlimits"]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &s.Rlimits); err != nil {
			return fmt.Errorf("\"rlimits\": %w", err)
		}
		for _, r := range s.Rlimits {
			if _, ok := rlimitNames[strings.ToUpper(r.Type)]; !ok {
				return fmt.Errorf("\"rlimits\": unknown type %q", r.Type)
			}
			if r.Soft > r.Hard {
				return fmt.Errorf("\"rlimits\": %s soft limit %d above hard limit %d", r.Type, r.Soft, r.Hard)
			}
		}
	}
	return nil
}
