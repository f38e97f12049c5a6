package broker

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// EnvStorePassword, when set, holds the PostgreSQL password.
const EnvStorePassword = "SEALROOT_BROKER_STORE_PASSWORD"

// storeCredential is the name of the systemd credential (LoadCredential=)
// holding the PostgreSQL password, read from $CREDENTIALS_DIRECTORY.
const storeCredential = "sealroot-store-password"

// storePassword finds the PostgreSQL password off the command line, in
// this order: --store-password-file, $SEALROOT_BROKER_STORE_PASSWORD, the
// systemd credential sealroot-store-password. "" leaves the DSN's own
// password, or pgx's PGPASSWORD / PGPASSFILE, in charge.
func storePassword(o Options) (string, error) {
	read := func(path, what string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", what, err)
		}
		pw := strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
		if pw == "" {
			return "", fmt.Errorf("%s %s is empty", what, path)
		}
		return pw, nil
	}
	if o.StorePasswordFile != "" {
		return read(o.StorePasswordFile, "--store-password-file")
	}
	if v := os.Getenv(EnvStorePassword); v != "" {
		return v, nil
	}
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		path := filepath.Join(dir, storeCredential)
		if _, err := os.Stat(path); err == nil {
			return read(path, "the credential "+storeCredential)
		}
	}
	return "", nil
}

// dsnHasPassword reports whether a postgres URL carries a password (which
// `ps` shows to every user of the host).
func dsnHasPassword(dsn string) bool {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}
