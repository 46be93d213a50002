package deploy

import (
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is a parsed Dockerfile: BuildKit's own parser and instruction
// decoder (what `docker build` runs), plus the lint warnings BuildKit's
// built-in rules report.
type Dockerfile struct {
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand
	AST      *parser.Node
	Warnings []string
}

// ParseDockerfile parses path with BuildKit.
func ParseDockerfile(path string) (*Dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	df := &Dockerfile{AST: res.AST}
	for _, w := range res.Warnings {
		df.Warnings = append(df.Warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, _ []parser.Range) {
		df.Warnings = append(df.Warnings, rule+": "+msg)
	}})
	df.Stages, df.MetaArgs, err = instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, fmt.Errorf("instructions %s: %w", path, err)
	}
	return df, nil
}
