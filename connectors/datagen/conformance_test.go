package datagen

import (
	"testing"

	"sluice/connectors"
	"sluice/connectors/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunSource(t, conformance.SourceDriver{
		New: func(t *testing.T, env connectors.Env) connectors.Source {
			cfg, err := Spec().Options.Validate("datagen", map[string]string{"rows": "2500", "batch_size": "300", "tables": "a,b"})
			if err != nil {
				t.Fatal(err)
			}
			src, err := Spec().NewSource(cfg, env)
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Initial:       2500,
		Bounded:       true,
		Deterministic: true,
	})
}
