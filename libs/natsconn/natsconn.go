// Package natsconn holds the one place where a Realmstream process learns how
// to authenticate to NATS and encrypt the connection: user credentials (a
// .creds file, an nkey seed, or user/password from a Secret) and TLS (CA
// bundle, optional client certificate). Every service registers the same
// flags with Register and adds Options.NATS() to its nats.Connect call, so
// compose, the Kubernetes overlays and --help name the same REALM_NATS_*
// variables everywhere.
package natsconn

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/tlsfiles"
)

// Options are the credentials and TLS settings of a NATS connection. The zero
// value connects without credentials and in clear (development).
type Options struct {
	Creds    string // --nats-creds: .creds file (user JWT + nkey seed), decentralised auth
	NKeySeed string // --nats-nkey-seed: file with an nkey seed (server config lists the public key)
	User     string // --nats-user
	Password string // --nats-password (from a Secret, as REALM_NATS_PASSWORD)
	TLS      tlsfiles.Files
}

// Register binds the options to --nats-creds, --nats-nkey-seed, --nats-user,
// --nats-password and --nats-tls* (each with its REALM_* variable).
func (o *Options) Register(s *envflag.Set) {
	s.String(&o.Creds, "nats-creds", o.Creds, "NATS user credentials file (.creds: JWT and nkey seed); one of --nats-creds, --nats-nkey-seed, --nats-user")
	s.String(&o.NKeySeed, "nats-nkey-seed", o.NKeySeed, "file holding the NATS user's nkey seed (SU...); the server authorizes its public key")
	s.String(&o.User, "nats-user", o.User, "NATS user name (with --nats-password)")
	s.String(&o.Password, "nats-password", o.Password, "NATS password of --nats-user (give it from a Secret)")
	o.TLS.Register(s, "nats", "NATS")
}

// Validate refuses contradictory or unreadable settings, so a mistake stops
// the process at start (exit 2) instead of at the first reconnect.
func (o Options) Validate() error {
	n := 0
	for _, set := range []bool{o.Creds != "", o.NKeySeed != "", o.User != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("natsconn: give only one of --nats-creds, --nats-nkey-seed and --nats-user")
	}
	if o.Password != "" && o.User == "" {
		return errors.New("natsconn: --nats-password without --nats-user")
	}
	for flag, f := range map[string]string{"--nats-creds": o.Creds, "--nats-nkey-seed": o.NKeySeed} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("natsconn: %s: %w", flag, err)
		}
	}
	if err := o.TLS.Validate(); err != nil {
		return fmt.Errorf("natsconn: --nats-tls*: %w", err)
	}
	return nil
}

// NATS returns the nats.Connect options of o. Files are read when the
// connection is made (the CA bundle and client certificate at every
// reconnect), so rotated Secret volumes are used without a restart.
func (o Options) NATS() []nats.Option {
	var opts []nats.Option
	switch {
	case o.Creds != "":
		opts = append(opts, nats.UserCredentials(o.Creds))
	case o.NKeySeed != "":
		seed := o.NKeySeed
		opts = append(opts, func(no *nats.Options) error {
			opt, err := nats.NkeyOptionFromSeed(seed)
			if err != nil {
				return fmt.Errorf("natsconn: --nats-nkey-seed: %w", err)
			}
			return opt(no)
		})
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.TLS.Enabled() {
		t := o.TLS
		opts = append(opts, func(no *nats.Options) error {
			cfg, err := t.Config()
			if err != nil {
				return fmt.Errorf("natsconn: %w", err)
			}
			no.Secure, no.TLSConfig = true, cfg
			if t.CA != "" {
				no.RootCAsCB = t.RootCAs // re-read at every (re)connect
			}
			return nil
		})
	}
	return opts
}

// Connect dials url with o's credentials and TLS followed by extra.
func (o Options) Connect(url string, extra ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(url, append(o.NATS(), extra...)...)
}

// FlagNames lists the flags Register defines: a process that runs its own
// embedded NATS (realmstream run) leaves them out of the settings it adopts.
func FlagNames() []string {
	return []string{"nats-creds", "nats-nkey-seed", "nats-user", "nats-password",
		"nats-tls", "nats-tls-ca", "nats-tls-cert", "nats-tls-key", "nats-tls-server-name"}
}
