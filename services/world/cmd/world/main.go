// Command world runs a Realmstream world instance: it owns some of the zones,
// simulates them and appends their events. Every flag also reads its default
// from REALM_<FLAG_NAME>; see --help.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/services/world/world"
)

func main() {
	cfg := world.DefaultConfig()
	os.Exit(svcmain.Run(os.Args[1:], os.Stderr, svcmain.Spec{
		Name: "world",
		About: "A Realmstream world instance: owns zones (leases in Redis or in-process), consumes cmd.<zone>,\n" +
			"simulates at a fixed tick and appends fenced events to evt.<zone>.",
		Version:  version,
		Register: cfg.RegisterFlags,
		Common:   &cfg.Common,
		New: func(log *slog.Logger) (svcmain.Service, error) {
			redis.SetLogger(redisLog{log}) // go-redis logs through slog, not to bare stderr
			return world.New(cfg, log)
		},
	}))
}

// redisLog adapts slog to go-redis's internal logger.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...))
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"
