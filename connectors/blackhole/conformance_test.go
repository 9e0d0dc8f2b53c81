package blackhole

import (
	"testing"

	"sluice/connectors"
	"sluice/connectors/conformance"
)

// The blackhole sink cannot be read back: the suite checks its lifecycle
// (writes, flushes, checkpoints, no leak, Close in time).
func TestConformance(t *testing.T) {
	conformance.RunSink(t, conformance.SinkDriver{
		New: func(t *testing.T, env connectors.Env) connectors.Sink {
			cfg, err := Spec().Options.Validate("blackhole", nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Spec().NewSink(cfg, env)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Table: func(check string) connectors.TableID { return connectors.TableID{Database: "src", Table: check} },
	})
}
