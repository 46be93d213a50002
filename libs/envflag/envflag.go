// Package envflag binds configuration to command-line flags whose defaults
// come from environment variables. Each flag --some-name has the variable
// REALM_SOME_NAME; --help lists both. One rule for every service keeps compose,
// Kubernetes ConfigMaps and flags from drifting apart (see deploy tests).
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// EnvName returns the environment variable of a flag: "nats-url" -> "REALM_NATS_URL".
func EnvName(flagName string) string {
	return "REALM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Set binds flags of one FlagSet to their environment variables.
type Set struct {
	FS   *flag.FlagSet
	errs []error
}

// New wraps fs.
func New(fs *flag.FlagSet) *Set { return &Set{FS: fs} }

func (s *Set) env(name string) (string, bool) { return os.LookupEnv(EnvName(name)) }

func (s *Set) usage(name, usage string) string {
	return fmt.Sprintf("%s [env %s]", usage, EnvName(name))
}

// String binds a string flag.
func (s *Set) String(p *string, name, def, usage string) {
	if v, ok := s.env(name); ok {
		def = v
	}
	s.FS.StringVar(p, name, def, s.usage(name, usage))
}

// Int binds an int flag.
func (s *Set) Int(p *int, name string, def int, usage string) {
	if v, ok := s.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not an integer", EnvName(name), v))
		} else {
			def = n
		}
	}
	s.FS.IntVar(p, name, def, s.usage(name, usage))
}

// Int64 binds an int64 flag (sizes in bytes).
func (s *Set) Int64(p *int64, name string, def int64, usage string) {
	if v, ok := s.env(name); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not an integer", EnvName(name), v))
		} else {
			def = n
		}
	}
	s.FS.Int64Var(p, name, def, s.usage(name, usage))
}

// Float binds a float64 flag.
func (s *Set) Float(p *float64, name string, def float64, usage string) {
	if v, ok := s.env(name); ok {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not a number", EnvName(name), v))
		} else {
			def = n
		}
	}
	s.FS.Float64Var(p, name, def, s.usage(name, usage))
}

// Bool binds a bool flag.
func (s *Set) Bool(p *bool, name string, def bool, usage string) {
	if v, ok := s.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not a boolean", EnvName(name), v))
		} else {
			def = b
		}
	}
	s.FS.BoolVar(p, name, def, s.usage(name, usage))
}

// Duration binds a time.Duration flag.
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := s.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not a duration (e.g. 5s)", EnvName(name), v))
		} else {
			def = d
		}
	}
	s.FS.DurationVar(p, name, def, s.usage(name, usage))
}

// Parse parses args; it reports bad environment values first.
func (s *Set) Parse(args []string) error {
	if len(s.errs) > 0 {
		return fmt.Errorf("envflag: %w", s.errs[0])
	}
	return s.FS.Parse(args)
}
