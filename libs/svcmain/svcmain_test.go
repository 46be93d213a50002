package svcmain

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/realmstream/realmstream/libs/envflag"
)

type fakeSvc struct{ err error }

func (f fakeSvc) Run(context.Context) error { return f.err }

func spec(level *string, newErr, runErr error) Spec {
	return Spec{
		Name: "svc", About: "A test service.", Version: "t",
		Register: func(s *envflag.Set) { s.String(level, "log-level", "info", "level") },
		Logging:  func() Logging { return Logging{Level: *level, Format: "text"} },
		New: func(*slog.Logger) (Service, error) {
			if newErr != nil {
				return nil, newErr
			}
			return fakeSvc{runErr}, nil
		},
	}
}

func TestExitCodes(t *testing.T) {
	var level string
	var out bytes.Buffer
	cases := []struct {
		name         string
		args         []string
		newErr, run  error
		want         int
		wantInStderr string
	}{
		{"ok", nil, nil, nil, ExitOK, ""},
		{"help", []string{"--help"}, nil, nil, ExitOK, "REALM_LOG_LEVEL"},
		{"bad flag", []string{"--nope"}, nil, nil, ExitConfig, "nope"},
		{"bad level", []string{"--log-level", "loud"}, nil, nil, ExitConfig, "want debug"},
		{"refused config", nil, errors.New("bad rules"), nil, ExitConfig, ""},
		{"run fails", nil, nil, errors.New("boom"), ExitFailed, ""},
	}
	for _, c := range cases {
		out.Reset()
		if got := Run(c.args, &out, spec(&level, c.newErr, c.run)); got != c.want {
			t.Errorf("%s: exit %d, want %d (%s)", c.name, got, c.want, out.String())
		}
		if !strings.Contains(out.String(), c.wantInStderr) {
			t.Errorf("%s: stderr %q lacks %q", c.name, out.String(), c.wantInStderr)
		}
	}
}
