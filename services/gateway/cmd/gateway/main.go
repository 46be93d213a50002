// Command gateway runs the Realmstream client gateway. Every flag also reads
// its default from REALM_<FLAG_NAME>; see --help.
package main

import (
	"log/slog"
	"os"

	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/services/gateway/gateway"
)

func main() {
	cfg := gateway.DefaultConfig()
	os.Exit(svcmain.Run(os.Args[1:], os.Stderr, svcmain.Spec{
		Name:     "gateway",
		About:    "The Realmstream client gateway: TCP and WebSocket clients -> MPSC ring -> JetStream cmd.<zone>.",
		Version:  version,
		Register: cfg.RegisterFlags,
		Common:   &cfg.Common,
		New:      func(log *slog.Logger) (svcmain.Service, error) { return gateway.New(cfg, log) },
	}))
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"
