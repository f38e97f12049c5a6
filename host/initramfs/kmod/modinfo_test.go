package kmod

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/initramfs/kmod/kmodtest"
)

func TestParseModinfo(t *testing.T) {
	tests := []struct {
		name    string
		section string
		want    Modinfo
		wantErr string
	}{
		{
			name:    "xts as shipped by Debian",
			section: "alias=crypto-xts\x00alias=xts\x00softdep=pre: ecb\x00description=XTS block cipher mode\x00license=GPL\x00depends=\x00retpoline=Y\x00intree=Y\x00name=xts\x00vermagic=6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions \x00",
			want: Modinfo{
				Name: "xts", SoftPre: []string{"ecb"},
				Vermagic: "6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions ",
				Aliases:  []string{"crypto-xts", "xts"},
			},
		},
		{
			name:    "dashes normalized in depends and name, padding skipped",
			section: "\x00\x00depends=dm-mod,dm-bufio\x00\x00\x00\x00name=dm_crypt\x00",
			want:    Modinfo{Name: "dm_crypt", Depends: []string{"dm_mod", "dm_bufio"}},
		},
		{
			name:    "softdep pre and post, repeated, and without space",
			section: "softdep=pre: a b post: c\x00softdep=pre:crypto-crc32c\x00",
			want:    Modinfo{SoftPre: []string{"a", "b", "crypto-crc32c"}, SoftPost: []string{"c"}},
		},
		{
			name:    "softdep without pre: is ignored with a warning (cifs in 6.1)",
			section: "softdep=gcm\x00name=cifs\x00",
			want: Modinfo{Name: "cifs", Warnings: []string{
				`softdep "gcm": "gcm" is not after pre: or post:, or not a module name; ignored`,
			}},
		},
		{
			name:    "value may contain '='",
			section: "parm=x:a=b\x00vermagic=1.2.3 x=y\x00",
			want:    Modinfo{Vermagic: "1.2.3 x=y"},
		},
		{name: "empty section", section: "", want: Modinfo{}},
		{name: "entry without =", section: "name=a\x00garbage\x00", wantErr: "not key=value"},
		{name: "empty key", section: "=x\x00", wantErr: "not key=value"},
		{name: "bad depends name", section: "depends=../evil\x00", wantErr: "not a module name"},
		{name: "empty depends element", section: "depends=a,,b\x00", wantErr: "not a module name"},
		{name: "bad own name", section: "name=a/b\x00", wantErr: "not a module name"},
		{name: "over-long name", section: "depends=" + strings.Repeat("a", 56) + "\x00", wantErr: "not a module name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseModinfo([]byte(tc.section))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestParseModinfoTooLarge(t *testing.T) {
	if _, err := ParseModinfo(make([]byte, MaxModinfoSize+1)); err == nil {
		t.Fatal("oversized section accepted")
	}
}

func TestRelease(t *testing.T) {
	for vm, want := range map[string]string{
		"6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions ": "6.1.0-56-cloud-amd64",
		"  5.4.0 SMP":  "5.4.0",
		"":             "",
		"   ":          "",
		"6.9.0-rc1+ x": "6.9.0-rc1+",
	} {
		if got := (Modinfo{Vermagic: vm}).Release(); got != want {
			t.Errorf("Release(%q) = %q, want %q", vm, got, want)
		}
	}
}

func TestReadModinfo(t *testing.T) {
	m := kmodtest.Module{Path: "kernel/a/dm-crypt.ko", Name: "dm_crypt", Depends: []string{"dm-mod"}, Softdeps: []string{"pre: x post: y"}}
	got, err := ReadModinfo(bytes.NewReader(m.Image()))
	if err != nil {
		t.Fatal(err)
	}
	want := Modinfo{
		Name: "dm_crypt", Depends: []string{"dm_mod"}, SoftPre: []string{"x"}, SoftPost: []string{"y"},
		Vermagic: kmodtest.Release + " SMP preempt mod_unload modversions ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}

	for name, data := range map[string][]byte{
		"empty":     nil,
		"not ELF":   []byte("hello, this is not an ELF file at all........................................"),
		"truncated": m.Image()[:70],
		"no modinfo": func() []byte {
			b := m.Image()
			// Rename .modinfo to .modinfX in the section name table.
			i := bytes.Index(b, []byte(".modinfo\x00.shstrtab"))
			b[i+7] = 'X'
			return b
		}(),
		"executable": func() []byte {
			b := m.Image()
			b[16] = 2 // e_type = ET_EXEC
			return b
		}(),
	} {
		if _, err := ReadModinfo(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzModinfo checks that parsing arbitrary .modinfo bytes never panics and
// that whatever it accepts holds only valid names.
func FuzzModinfo(f *testing.F) {
	for _, s := range []string{
		"alias=crypto-xts\x00softdep=pre: ecb\x00depends=\x00name=xts\x00vermagic=6.1.0 SMP \x00",
		"depends=dm-mod,dm-bufio\x00name=dm_crypt\x00",
		"softdep=pre: a b post: c\x00softdep=gcm\x00",
		"\x00\x00\x00",
		"=",
		"softdep=pre:post:pre:x\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseModinfo(data)
		if err != nil {
			return
		}
		for _, list := range [][]string{m.Depends, m.SoftPre, m.SoftPost} {
			for _, n := range list {
				if !validName(n) {
					t.Fatalf("accepted invalid name %q", n)
				}
			}
		}
		if m.Name != "" && !validName(m.Name) {
			t.Fatalf("accepted invalid own name %q", m.Name)
		}
	})
}

// FuzzReadModinfo feeds arbitrary bytes through the ELF reader: a corrupt
// module file must give an error, not a panic or a huge allocation.
func FuzzReadModinfo(f *testing.F) {
	f.Add(kmodtest.ModuleELF("name=a", "depends=b,c", "softdep=pre: d", "vermagic=6.1.0 SMP"))
	f.Add(kmodtest.ModuleELF())
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadModinfo(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, n := range m.Depends {
			if !validName(n) {
				t.Fatalf("accepted invalid name %q", n)
			}
		}
	})
}
