//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
)

func init() {
	if err := enableFromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
