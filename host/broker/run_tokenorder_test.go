package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunMissingTokenFileCreatesNoKey: a broker refused for a missing token
// file leaves no freshly generated key-encryption or token key behind.
func TestRunMissingTokenFileCreatesNoKey(t *testing.T) {
	t.Setenv(EnvKEK, "")
	for _, flag := range []string{"--admin-token-file", "--registration-token-file"} {
		t.Run(flag, func(t *testing.T) {
			state := t.TempDir()
			o := Options{Listen: "127.0.0.1:0", State: state, Registration: RegistrationToken, LogLevel: "info"}
			missing := filepath.Join(t.TempDir(), "admin-token")
			if flag == "--admin-token-file" {
				o.AdminTokenFile = missing
			} else {
				o.RegistrationTokenFile = missing
			}
			err := Run(context.Background(), o, nil)
			if err == nil || !strings.Contains(err.Error(), flag) {
				t.Fatalf("Run = %v, want an error naming %s", err, flag)
			}
			for _, f := range []string{"kek", "token-key.pem"} {
				if _, err := os.Stat(filepath.Join(state, f)); err == nil {
					t.Errorf("%s was created before the missing token file was refused", f)
				}
			}
		})
	}
}
