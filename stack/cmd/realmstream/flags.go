package main

import (
	"flag"

	"github.com/realmstream/realmstream/libs/envflag"
)

// adoptFlags makes a service's own flags (and their REALM_* environment
// variables) flags of the one-process stack, so that every setting of the
// service is reachable under `realmstream run` (issue 10 #12: before, the
// stack built the gateway from its defaults and REALM_MAX_FRAME, REALM_RATE,
// REALM_BURST, REALM_TOKEN_TTL had no effect). register is the service's
// RegisterFlags; it binds the flags to the service's config, which the
// caller then completes with what the stack decides itself (skip: addresses,
// NATS URL, instance id, ...). A name the stack already defines (e.g.
// --tcp-addr, --log-level) keeps the stack's meaning. It returns the names
// adopted.
func adoptFlags(fs *flag.FlagSet, register func(*envflag.Set), skip ...string) []string {
	own := flag.NewFlagSet("adopt", flag.ContinueOnError)
	register(envflag.New(own)) // the env defaults are applied here, into the config
	skipped := map[string]bool{}
	for _, n := range skip {
		skipped[n] = true
	}
	var adopted []string
	own.VisitAll(func(f *flag.Flag) {
		if skipped[f.Name] || fs.Lookup(f.Name) != nil {
			return
		}
		fs.Var(f.Value, f.Name, f.Usage)
		adopted = append(adopted, f.Name)
	})
	return adopted
}

// stackOwnedGatewayFlags are the gateway settings the stack sets itself
// (create-streams too: the stack creates the streams before any service).
var stackOwnedGatewayFlags = []string{"nats-url", "http-addr", "instance-id", "log-format", "dev", "stream-replicas", "create-streams"}
