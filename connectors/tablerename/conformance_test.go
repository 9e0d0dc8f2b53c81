package tablerename

import (
	"testing"

	"sluice/connectors"
	"sluice/connectors/conformance"
)

func TestConformance(t *testing.T) {
	cfg, err := Spec().Options.Validate("table_rename", map[string]string{"prefix": "ods_", "case": "upper"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Spec().NewTransform(cfg, connectors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	conformance.RunTransform(t, tr)
}
