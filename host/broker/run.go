package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/host/verify/cca"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/host/verify/policy"
	"github.com/sealroot/sealroot/host/verify/sim"
)

// EnvKEK, when set, holds the key-encryption key (64 hex characters or
// base64 of 32 bytes) instead of the key file.
const EnvKEK = "SEALROOT_BROKER_KEK"

// Options are the settings of `sealroot broker`, one per flag.
type Options struct {
	Listen                string
	AdminListen           string
	State                 string
	Store                 string
	TrustSimRoot          string
	AdminTokenFile        string
	AdminClientCA         string
	Registration          string
	RegistrationTokenFile string
	TLSCert               string
	TLSKey                string
	KEKFile               string
	TokenKeyFile          string
	CCACPAKFile           string
	SessionTTL            time.Duration
	PendingSessions       string
	MaxPendingSessions    int
	MaxPendingPerClient   int
	VerifyTimeout         time.Duration
	ShutdownTimeout       time.Duration
	Offline               bool
	RateLimit             float64
	RateBurst             int
	MinTCB                string
	TrustedProxies        []string
	AuditLog              string
	LogLevel              string
	Config                string
	// Logger receives the broker's log records and, unless AuditLog
	// names a file, its audit records; Run drops the records below
	// LogLevel. nil discards them (not a flag; `sealroot broker` gives
	// JSONLogger(stderr)).
	Logger *slog.Logger `json:"-"`
	// StartOver discards the state (see openState) and creates a new one.
	StartOver bool
	// StoreTimeout bounds every store call.
	StoreTimeout time.Duration
	// StorePasswordFile holds the PostgreSQL password.
	StorePasswordFile string
	// NoWorkloadCache makes a PostgreSQL broker read every workload from
	// the database (docs/broker.md, "Storage and replicas").
	NoWorkloadCache bool
	// AdminReady, when set, is called with the admin listener's address
	// once it is up (not a flag; tests and embedders).
	AdminReady func(net.Addr) `json:"-"`
}

// RegisterFlags defines the broker's flags on fs (the names docs/broker.md documents).
func (o *Options) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8000", "address to serve on (host:port)")
	fs.StringVar(&o.AdminListen, "admin-listen", "", "serve the admin API and /metrics on this address (host:port) only, not on --listen")
	fs.StringVar(&o.State, "state", "", "state directory: database, key-encryption key, token key, certificate cache (required)")
	fs.StringVar(&o.Store, "store", "bbolt", "store: bbolt (in --state) or a postgres:// URL shared by replicas")
	fs.StringVar(&o.TrustSimRoot, "trust-sim-root", "", "also accept reports of the simulated secure processor in DIR (tests only; never in production)")
	fs.StringVar(&o.AdminTokenFile, "admin-token-file", "", "file holding the admin bearer token (enables the admin API)")
	fs.StringVar(&o.AdminClientCA, "admin-client-ca", "", "PEM CA bundle: TLS clients with a certificate it verifies are admins (needs --tls-cert)")
	fs.StringVar(&o.Registration, "registration", RegistrationOpen, "who may call /kbs/v0/register_workload: open, token or closed")
	fs.StringVar(&o.RegistrationTokenFile, "registration-token-file", "", "file holding the registration token for --registration token (default: the admin token)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate chain (PEM); with --tls-key serves HTTPS")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&o.KEKFile, "kek-file", "", "key-encryption key file, created on first start (default STATE/kek; may live outside --state, e.g. a systemd credential %d/kek; $"+EnvKEK+" overrides)")
	fs.StringVar(&o.TokenKeyFile, "token-key", "", "ES256 key signing Trustee attestation tokens, created on first start (default STATE/token-key.pem)")
	fs.StringVar(&o.CCACPAKFile, "cca-cpak", "", "PEM file of Arm CCA platform keys to trust (enables tee cca)")
	fs.DurationVar(&o.SessionTTL, "session-ttl", 5*time.Minute, "lifetime of an attestation session")
	fs.StringVar(&o.PendingSessions, "pending-sessions", "auto", "where sessions live: memory (challenged and attested sessions in memory, a handshake writes nothing; a restart forgets them and guests run the handshake again), store (written to the store, shared by replicas), or auto (store on PostgreSQL, else memory)")
	fs.IntVar(&o.MaxPendingPerClient, "max-pending-per-client", 0, "sessions awaiting /attest one client address may have (default: a tenth of --max-pending-sessions)")
	fs.IntVar(&o.MaxPendingSessions, "max-pending-sessions", DefaultMaxPendingSessions, "sessions awaiting /attest this broker holds (memory) or may have outstanding (store); /auth answers 503 past it. In memory mode also the attested sessions held in memory (past it they are written to the store)")
	fs.DurationVar(&o.VerifyTimeout, "verify-timeout", 30*time.Second, "time limit of one evidence verification (certificate fetches included)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "on SIGTERM, how long in-flight requests may finish")
	fs.BoolVar(&o.Offline, "offline", false, "never fetch certificates or collateral (AMD KDS, Intel PCS): evidence or the cache STATE/certs must carry them, else the evidence is refused (a TDX quote needs its platform's TCB info, QE identity and CRLs cached; warm with 'sealroot verify --tee tdx --evidence QUOTE --cache-dir STATE/certs' online)")
	fs.Float64Var(&o.RateLimit, "rate-limit", DefaultRateLimit, "requests per second per client address to the unauthenticated endpoints (0: unlimited)")
	fs.IntVar(&o.RateBurst, "rate-burst", DefaultRateBurst, "burst size of --rate-limit")
	fs.StringVar(&o.MinTCB, "min-tcb", "", "broker-wide lowest accepted TCB of snp workloads (bl=N,tee=N,snp=N,ucode=N); a workload's min_tcb may raise it, never lower it")
	fs.StringSliceVar(&o.TrustedProxies, "trusted-proxy", nil, "CIDR of a reverse proxy whose X-Forwarded-For names the client (repeatable)")
	fs.StringVar(&o.AuditLog, "audit-log", "", "append audit records to FILE instead of the log stream")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.Config, "config", "", "YAML or JSON file of flag settings (keys are flag names; command-line flags win)")
	fs.BoolVar(&o.StartOver, "start-over", false, "discard the broker's state and create a new one: moves the database, keys and marker in --state aside (old-TIMESTAMP/), wipes a PostgreSQL store")
	fs.DurationVar(&o.StoreTimeout, "store-timeout", 5*time.Second, "deadline of every store call; a store that misses it answers 503 with Retry-After")
	fs.BoolVar(&o.NoWorkloadCache, "no-workload-cache", false, "PostgreSQL: read every workload from the database instead of keeping those read in memory until a change notification drops them (use behind a connection pooler that does not pass LISTEN, where the cache would stay off anyway)")
	fs.StringVar(&o.StorePasswordFile, "store-password-file", "", "file holding the PostgreSQL password (else $"+EnvStorePassword+", or the systemd credential "+storeCredential+")")
}

// ApplyConfigFile sets every flag named in the YAML (or JSON) file at path
// that was not given on the command line. Lists set repeatable flags.
func ApplyConfigFile(fs *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("config %s: not a YAML or JSON mapping: %w", path, err)
	}
	for key, val := range m {
		f := fs.Lookup(key)
		if key == "start-over" {
			return fmt.Errorf("config %s: start-over discards the broker's state: give it on the command line, once", path)
		}
		if f == nil || key == "config" {
			return fmt.Errorf("config %s: unknown setting %q (use flag names, e.g. listen, state, store)", path, key)
		}
		if f.Changed {
			continue
		}
		vals := []any{val}
		if list, ok := val.([]any); ok {
			vals = list
		}
		for _, v := range vals {
			if err := fs.Set(key, fmt.Sprint(v)); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, key, err)
			}
		}
	}
	return nil
}

// Run serves the broker until ctx is done, then shuts down gracefully.
// It logs to o.Logger at o.LogLevel. ready, when not nil, is called with
// the bound address once the listener is up.
func Run(ctx context.Context, o Options, ready func(net.Addr)) error {
	level, err := parseLogLevel(o.LogLevel)
	if err != nil {
		return err
	}
	log := slog.New(levelGate{h: o.logger().Handler(), min: level})
	if o.State == "" {
		return errors.New("--state is required (the broker's state directory)")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if o.AdminClientCA != "" && o.TLSCert == "" {
		return errors.New("--admin-client-ca needs TLS (--tls-cert and --tls-key)")
	}
	if err := os.MkdirAll(o.State, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}

	cfg, closeFn, err := buildConfig(ctx, o, log)
	if err != nil {
		return err
	}
	defer closeFn()
	cfg.SeparateAdmin = o.AdminListen != ""
	srv, err := New(cfg)
	if err != nil {
		return err
	}

	var tlsConf *tls.Config
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		if o.AdminClientCA != "" {
			pem, err := os.ReadFile(o.AdminClientCA)
			if err != nil {
				return fmt.Errorf("reading --admin-client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--admin-client-ca %s: no PEM certificates", o.AdminClientCA)
			}
			tlsConf.ClientCAs, tlsConf.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.Listen, err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	log.Info("broker listening", "addr", ln.Addr().String(), "scheme", scheme, "store", store.RedactDSN(storeName(o.Store)),
		"registration", cfg.Registration, "admin_api", cfg.AdminToken != "" || cfg.AdminClientCerts, "offline", o.Offline,
		"tees", verifierNames(cfg.Verifiers))
	admin, err := startAdminListener(o, tlsConf, srv, hs, log)
	if err != nil {
		ln.Close()
		return err
	}
	if ready != nil {
		ready(ln.Addr())
	}

	purgeCtx, stopPurge := context.WithCancel(ctx)
	defer stopPurge()
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-purgeCtx.Done():
				return
			case <-t.C:
				if n, err := srv.PurgeExpired(purgeCtx); err != nil {
					log.Warn("purging expired sessions", "err", err)
				} else if n > 0 {
					log.Debug("purged expired sessions", "count", n)
				}
			}
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", o.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in time", "err", err)
		hs.Close()
	}
	if admin != nil && admin.Shutdown(sctx) != nil {
		admin.Close()
	}
	log.Info("stopped")
	return nil
}

func storeName(s string) string {
	if s == "" {
		return "bbolt"
	}
	return s
}

func verifierNames(v map[string]attest.Verifier) []string {
	var out []string
	for _, t := range attest.TEEs() {
		if t.Hardware && v[t.Wire] != nil {
			out = append(out, t.Wire)
		}
	}
	return out
}

// buildConfig loads keys, opens the store and builds the verifiers. Audit
// records go to --audit-log, else to o.Logger without the --log-level gate
// that log applies: an operator who quiets the log keeps the audit trail.
func buildConfig(ctx context.Context, o Options, log *slog.Logger) (Config, func(), error) {
	cfg := Config{Logger: log, Audit: o.logger(), SessionTTL: o.SessionTTL, VerifyTimeout: o.VerifyTimeout,
		Registration: o.Registration, RateLimit: o.RateLimit, RateBurst: o.RateBurst, MaxPendingSessions: o.MaxPendingSessions,
		MaxPendingPerClient: o.MaxPendingPerClient}
	if o.PendingSessions != "auto" {
		cfg.PendingSessions = o.PendingSessions
	}
	closers := []func(){}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (Config, func(), error) { closeAll(); return Config{}, nil, err }

	if store.IsPostgres(o.Store) && dsnHasPassword(o.Store) {
		log.Warn("the --store URL carries a password, which `ps` shows to every user: use --store-password-file, $" + EnvStorePassword + " or a credential")
	}
	// Token files first: a missing one must stop the broker before it
	// creates any key in the state directory.
	var err error
	if o.AdminTokenFile != "" {
		if cfg.AdminToken, err = readToken(o.AdminTokenFile, "--admin-token-file", log); err != nil {
			return fail(err)
		}
	}
	if o.RegistrationTokenFile != "" {
		if cfg.RegistrationToken, err = readToken(o.RegistrationTokenFile, "--registration-token-file", log); err != nil {
			return fail(err)
		}
	} else {
		cfg.RegistrationToken = cfg.AdminToken
	}
	st, err := openState(ctx, o, log)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() {
		if err := st.Store.Close(); err != nil {
			log.Warn("closing the store", "err", err)
		}
	})
	cfg.KEK, cfg.TokenKey, cfg.Store = st.KEK, st.TokenKey, st.Store

	cfg.AdminClientCerts = o.AdminClientCA != ""
	if o.MinTCB != "" {
		if cfg.MinTCB, err = policy.ParseTCB(o.MinTCB); err != nil {
			return fail(fmt.Errorf("--min-tcb: %w", err))
		}
	} else {
		log.Warn("no --min-tcb: SNP evidence from any firmware level AMD signed is accepted, including levels with published vulnerabilities, unless a workload's own min_tcb says otherwise")
	}
	for _, c := range o.TrustedProxies {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return fail(fmt.Errorf("--trusted-proxy %q: not a CIDR", c))
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, n)
	}
	if o.AuditLog != "" {
		f, err := os.OpenFile(o.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fail(fmt.Errorf("opening --audit-log: %w", err))
		}
		closers = append(closers, func() { f.Close() })
		cfg.Audit = slog.New(slog.NewJSONHandler(f, nil))
	}

	cache, err := certcache.Open(filepath.Join(o.State, "certs"))
	if err != nil {
		return fail(fmt.Errorf("certificate cache: %w", err))
	}
	vo := verify.Options{Cache: cache, Offline: o.Offline}
	if o.TrustSimRoot != "" {
		a, err := sim.Load(o.TrustSimRoot)
		if err != nil {
			return fail(fmt.Errorf("--trust-sim-root: %w", err))
		}
		log.Warn("TRUSTING THE SIMULATED SECURE PROCESSOR: evidence signed by the simulated root in this directory is accepted as SNP evidence. "+
			"Whoever holds its VCEK key can unlock every workload this broker serves. Never use this in production.", "dir", o.TrustSimRoot)
		cfg.TrustSimulated = true
		vo.SimRoot = a
	}
	if o.CCACPAKFile != "" {
		pem, err := os.ReadFile(o.CCACPAKFile)
		if err != nil {
			return fail(fmt.Errorf("reading --cca-cpak: %w", err))
		}
		keys, err := cca.ParseCPAKs(pem)
		if err != nil {
			return fail(fmt.Errorf("--cca-cpak: %w", err))
		}
		vo.CCACPAKs = keys
	}
	if cfg.Verifiers, err = verify.Broker(vo); err != nil {
		return fail(err)
	}
	return cfg, closeAll, nil
}

// readToken reads a token file: the first line, at least 16 characters.
func readToken(path, flag string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", flag, err)
	}
	tok := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	if len(tok) < 16 {
		return "", fmt.Errorf("%s %s: the token must be at least 16 characters", flag, path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("token file is readable by group or others; chmod 600 it", "flag", flag, "path", path)
	}
	return tok, nil
}
