package workload

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseShapes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Spec
	}{
		{"buildah nested OCI image config", `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=1"],"Entrypoint":["/app"],"Cmd":["-x","y"],"WorkingDir":"/w","User":"1000:1000"},"rootfs":{"type":"layers"}}`,
			Spec{Args: []string{"/app", "-x", "y"}, Env: []string{"PATH=/bin", "A=1"}, Cwd: "/w", User: "1000:1000", Shape: "oci-image"}},
		{"OCI runtime process", `{"ociVersion":"1.0.2","process":{"args":["/app","z"],"env":["B=2"],"cwd":"/r","rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":512}]}}`,
			Spec{Args: []string{"/app", "z"}, Env: []string{"B=2"}, Cwd: "/r", Rlimits: []Rlimit{{"RLIMIT_NOFILE", 1024, 512}}, Shape: "oci-runtime"}},
		{"flat libkrun form", `{"Cmd":["run"],"Entrypoint":["/ep"],"Env":["C=3"],"WorkingDir":"/f"}`,
			Spec{Args: []string{"/ep", "run"}, Env: []string{"C=3"}, Cwd: "/f", Shape: "flat"}},
		{"flat lowercase", `{"args":["/a"],"env":["D=4"],"cwd":"/l"}`,
			Spec{Args: []string{"/a"}, Env: []string{"D=4"}, Cwd: "/l", Shape: "flat"}},
		{"case-insensitive keys", `{"CONFIG":{"cmd":["/c"],"workingDIR":"/x"}}`,
			Spec{Args: []string{"/c"}, Cwd: "/x", Shape: "oci-image"}},
		{"empty means /bin/sh in /", `{}`, Spec{Args: []string{"/bin/sh"}, Cwd: "/", Shape: "flat"}},
		{"null config falls back to flat", `{"config":null,"Cmd":["/q"]}`, Spec{Args: []string{"/q"}, Cwd: "/", Shape: "flat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*s, tc.want) {
				t.Fatalf("got %+v\nwant %+v", *s, tc.want)
			}
		})
	}
	uid := uint32(5)
	s, err := Parse([]byte(`{"process":{"args":["/x"],"user":{"uid":5,"gid":6,"additionalGids":[7]}}}`))
	if err != nil || *s.UID != uid || *s.GID != 6 || s.AdditionalGIDs[0] != 7 {
		t.Fatalf("runtime user: %+v %v", s, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[1]`, "not a JSON object"},
		{`{"config":{"Cmd":5}}`, `"config.cmd": want an array of strings`},
		{`{"process":{"cwd":7}}`, `"process.cwd": want a string`},
		{`{"Cmd":["/a"],"WorkingDir":"rel"}`, "not absolute"},
		{`{"Cmd":["/a"],"Env":["NOEQUALS"]}`, "not KEY=VALUE"},
		{`{"process":{"rlimits":[{"type":"RLIMIT_BOGUS","hard":1,"soft":1}]}}`, "unknown type"},
		{`{"process":{"rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]}}`, "above hard limit"},
	} {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	for _, tc := range []struct {
		user string
		want Identity
		err  string
	}{
		{"", Identity{Home: "/root"}, ""},
		{"app", Identity{UID: 1000, GID: 1001, Home: "/home/app"}, ""},
		{"app:staff", Identity{UID: 1000, GID: 50, Home: "/home/app"}, ""},
		{"1000", Identity{UID: 1000, GID: 1001, Home: "/home/app"}, ""},
		{"4242:4343", Identity{UID: 4242, GID: 4343, Home: "/"}, ""},
		{"nobody", Identity{}, `user "nobody" not found`},
		{"app:nogroup", Identity{}, `group "nogroup" not found`},
	} {
		s := &Spec{User: tc.user}
		id, err := s.ResolveUser(root)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v", tc.user, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(id, tc.want) {
			t.Errorf("%q: got %+v %v want %+v", tc.user, id, err, tc.want)
		}
	}
}

func TestSupervisorStatuses(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to set credentials")
	}
	dir := t.TempDir()
	notExec := filepath.Join(dir, "data")
	os.WriteFile(notExec, []byte("not a program"), 0o644)
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	sv := &Supervisor{Stdin: devnull, Stdout: os.Stdout, Stderr: os.Stderr, Grace: time.Second}
	for _, tc := range []struct {
		args     []string
		want     int
		startErr bool
	}{
		{[]string{"/bin/sh", "-c", "exit 7"}, 7, false},
		{[]string{"/bin/sh", "-c", "kill -TERM $$"}, 128 + 15, false},
		{[]string{"sh", "-c", "exit 0"}, 0, false},
		{[]string{"/nonexistent/prog"}, 127, true},
		{[]string{"no-such-program-anywhere"}, 127, true},
		{[]string{notExec}, 126, true},
	} {
		s := &Spec{Args: tc.args, Cwd: dir}
		p, err := s.Resolve("/")
		var st int
		if err == nil {
			st, err = sv.Run(p)
		}
		var se *StartError
		if tc.startErr {
			if !errors.As(err, &se) || se.Status != tc.want {
				t.Errorf("%v: err %v, want start error %d", tc.args, err, tc.want)
			}
			continue
		}
		if err != nil || st != tc.want {
			t.Errorf("%v: status %d err %v, want %d", tc.args, st, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"config":{"Env":["A=1"],"Cmd":["/x"]}}`))
	f.Add([]byte(`{"process":{"args":["/x"],"user":{"uid":1},"rlimits":[{"type":"RLIMIT_NOFILE","hard":2,"soft":1}]}}`))
	f.Add([]byte(`{"Entrypoint":"/e","Cwd":"/"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if len(s.Args) == 0 || !strings.HasPrefix(s.Cwd, "/") {
			t.Fatalf("accepted spec without argv or absolute cwd: %+v", s)
		}
	})
}

func TestReadConfigFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadConfigFile(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadConfigFile blocked on a FIFO")
	}
	link := filepath.Join(dir, "zero")
	os.Symlink("/dev/zero", link)
	if _, err := ReadConfigFile(link); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("/dev/zero: %v", err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, MaxConfigSize+1), 0o644)
	if _, err := ReadConfigFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big: %v", err)
	}
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, []byte(`{}`), 0o644)
	if b, err := ReadConfigFile(ok); err != nil || string(b) != "{}" {
		t.Fatalf("ok: %q %v", b, err)
	}
}
