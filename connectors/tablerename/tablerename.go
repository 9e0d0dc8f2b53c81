// Package tablerename is the table_rename transform: it renames the table of
// every batch (prefix, suffix, letter case, regular expression), the usual
// way to land shop.orders as ods_orders.
package tablerename

import (
	"context"
	"regexp"
	"strings"

	"sluice/connectors"
)

// Spec declares the table_rename connector.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "table_rename",
		Kind:        connectors.KindTransform,
		Description: "renames tables: regex replace, then case, then prefix and suffix",
		Options: connectors.OptionSet{
			{Name: "prefix", Type: connectors.TypeString, Description: "prepended to the table name"},
			{Name: "suffix", Type: connectors.TypeString, Description: "appended to the table name"},
			{Name: "case", Type: connectors.TypeEnum, Enum: []string{"lower", "upper", "keep"}, Default: "keep",
				Description: "letter case of the table name"},
			{Name: "regex", Type: connectors.TypeRegex, Description: "regular expression matched against the table name"},
			{Name: "replacement", Type: connectors.TypeString, Description: "replacement for regex matches ($1 refers to groups)"},
			{Name: "database", Type: connectors.TypeString, Description: "database name to set on every table"},
		},
		NewTransform: func(cfg connectors.Config, _ connectors.Env) (connectors.Transform, error) {
			t := &Transform{prefix: cfg.String("prefix"), suffix: cfg.String("suffix"),
				letterCase: strings.ToLower(cfg.String("case")), replacement: cfg.String("replacement"),
				database: cfg.String("database")}
			if re := cfg.String("regex"); re != "" {
				t.re = regexp.MustCompile(re) // validated as TypeRegex
			}
			return t, nil
		},
	}
}

// Transform renames tables.
type Transform struct {
	prefix, suffix, letterCase, replacement, database string
	re                                                *regexp.Regexp
}

var _ connectors.Transform = (*Transform)(nil)

// Rename returns the new name of a table.
func (t *Transform) Rename(name string) string {
	if t.re != nil {
		name = t.re.ReplaceAllString(name, t.replacement)
	}
	switch t.letterCase {
	case "lower":
		name = strings.ToLower(name)
	case "upper":
		name = strings.ToUpper(name)
	}
	return t.prefix + name + t.suffix
}

// Apply renames the batch's table; the rows are untouched.
func (t *Transform) Apply(_ context.Context, in connectors.Batch) (connectors.Batch, error) {
	in.Table.Table = t.Rename(in.Table.Table)
	if t.database != "" {
		in.Table.Database = t.database
	}
	return in, nil
}
