package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is kvrflow's version, as the Go toolchain recorded it in the
// binary (runtime/debug.ReadBuildInfo): the module's version ("(devel)"
// for a build from a work tree), the VCS revision and time, whether the
// work tree had changes, and the Go version.
type buildInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Module: "github.com/kvrflow/kvrflow", Version: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Module, b.Version = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionLine is kvrflow --version's answer.
func versionLine() string {
	b := readBuildInfo()
	s := "kvrflow " + b.Version
	if b.Revision == "" {
		s += " (revision unknown: built without VCS stamping, e.g. -buildvcs=false)"
	}
	if b.Revision != "" {
		s += " (" + b.Revision
		if b.Modified {
			s += ", modified"
		}
		if b.Time != "" {
			s += ", " + b.Time
		}
		s += ")"
	}
	return s + " " + b.Go
}

// versionDoc is version's --json document.
type versionDoc struct {
	buildInfo
	exitReport
}

func (d *versionDoc) text(w io.Writer) { fmt.Fprintln(w, versionLine()) }

// versionCommand is kvrflow version: the line --version prints, or with
// --json the build information as a document.
func versionCommand(o *stdio, g *common, code *int) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "print kvrflow's version, VCS revision and Go version",
		Long:    "Print kvrflow's module version, the VCS revision it was built from, and the Go version (runtime/debug.ReadBuildInfo); kvrflow --version prints the same line.",
		Example: "  kvrflow version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			*code = finish(o, g.json, &versionDoc{buildInfo: readBuildInfo()}, nil, "")
			return nil
		},
	}
}
