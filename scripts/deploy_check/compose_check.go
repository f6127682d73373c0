// compose-check FILE: load a Compose file with compose-go (schema validation, interpolation,
// normalisation, consistency checks such as depends_on targets) and print the resolved project.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv, cli.WithResolvedPaths(true))
	if err != nil {
		die(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		die(err)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		die(err)
	}
	os.Stdout.Write(out)
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
