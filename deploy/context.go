package deploy

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
)

// DockerIgnore reads root/.dockerignore.
func DockerIgnore(root string) (*patternmatcher.PatternMatcher, error) {
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	return patternmatcher.New(patterns)
}

// StageContext lays out in dir what the first (build) stage of the
// Dockerfile sees for SERVICE=svc: the files its COPY instructions take from
// the build context, after .dockerignore. Building there proves the image
// build needs nothing the Dockerfile does not copy.
func StageContext(root, svc, dir string) error {
	pm, err := DockerIgnore(root)
	if err != nil {
		return err
	}
	df, err := ParseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return err
	}
	for _, c := range df.Stages[0].Commands {
		cp, ok := c.(*instructions.CopyCommand)
		if !ok || cp.From != "" {
			continue
		}
		for _, src := range cp.SourcePaths {
			src = strings.NewReplacer("${SERVICE}", svc, "$SERVICE", svc).Replace(src)
			matches, _ := filepath.Glob(filepath.Join(root, src))
			if len(matches) == 0 {
				return fmt.Errorf("COPY %s: nothing in the build context", src)
			}
			for _, m := range matches {
				rel, _ := filepath.Rel(root, m)
				// This layout keeps every path where it is in the context:
				// true of this Dockerfile (COPY a/b a/ or COPY a/b a/b); a
				// COPY that renames would need more than this function.
				dest := strings.TrimSuffix(cp.DestPath, "/")
				if dest != "." && dest != rel && dest != filepath.Dir(rel) && dest != strings.TrimSuffix(rel, "/") {
					return fmt.Errorf("COPY %s %s: moves files; StageContext only mirrors paths", src, cp.DestPath)
				}
				if err := copyTree(root, rel, dir, pm); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func copyTree(root, rel, dir string, pm *patternmatcher.PatternMatcher) error {
	return filepath.WalkDir(filepath.Join(root, rel), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(root, path)
		if excluded, _ := pm.MatchesOrParentMatches(r); excluded {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, r), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, filepath.Join(dir, r))
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BuildInStageContext lays out the Dockerfile's build-stage files for svc
// in a temporary directory and runs scripts/build.sh there, exactly as the
// image's RUN does: the binaries are what the image would ship.
func BuildInStageContext(ctx context.Context, root, svc, outDir, version string) error {
	dir, err := os.MkdirTemp("", "realm-stage-"+svc+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := StageContext(root, svc, dir); err != nil {
		return fmt.Errorf("stage context of %s: %w", svc, err)
	}
	return BuildService(ctx, dir, svc, outDir, version)
}
