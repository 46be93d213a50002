package deploy

import (
	"context"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// LoadCompose loads root/compose.yml with the compose-spec loader (the one
// docker compose uses): schema validation, interpolation from root/.env only
// (not from this process's environment, so the result does not depend on who
// runs it), and consistency checks (every referenced service, volume and
// network exists). Profiles are enabled as given.
//
// secrets is the file scripts/dev-secrets.sh writes (compose's second
// --env-file); "" loads .env alone.
func LoadCompose(ctx context.Context, root, secrets string, profiles ...string) (*types.Project, error) {
	files := []string{filepath.Join(root, ".env")}
	if secrets != "" {
		files = append(files, secrets)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnvFiles(files...),
		cli.WithDotEnv,
		cli.WithProfiles(profiles),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

// ComposeEnv returns the environment of one compose service (variables set
// without a value are left out, as compose does).
func ComposeEnv(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// RealmServiceOf returns the Realmstream service a compose service runs
// ("world-2" -> "world"), judged by the SERVICE build argument of its image;
// "" for third-party images.
func RealmServiceOf(s types.ServiceConfig) string {
	if s.Build == nil {
		return ""
	}
	if v, ok := s.Build.Args["SERVICE"]; ok && v != nil {
		return *v
	}
	return ""
}

// SortedNames returns the service names of p in order.
func SortedNames(p *types.Project) []string {
	var out []string
	for n := range p.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// hostPort splits "host:port" and URLs such as "nats://host:port" or
// "http://host:port/path" into host and port.
func hostPort(v string) (host, port string) {
	if i := strings.Index(v, "://"); i >= 0 {
		v = v[i+3:]
	}
	if i := strings.IndexAny(v, "/?"); i >= 0 {
		v = v[:i]
	}
	if i := strings.LastIndex(v, "@"); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.LastIndex(v, ":"); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}
