package connectors

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OptionType is the type of an option's value. Values are always written as
// strings in SQL; the type says how they must parse.
type OptionType string

// Option types.
const (
	TypeString   OptionType = "string"
	TypeInt      OptionType = "int"
	TypeBool     OptionType = "bool"
	TypeDuration OptionType = "duration"
	TypeEnum     OptionType = "enum"
	TypeList     OptionType = "list"
	TypeRegex    OptionType = "regex"
)

// Option declares one option of a connector (or of a job).
type Option struct {
	Name        string
	Type        OptionType
	Required    bool
	Default     string // "" means no default
	Description string
	Enum        []string // valid values of a TypeEnum option
	Min, Max    *int64   // bounds of a TypeInt option (inclusive)
	MinDuration time.Duration
	Secret      bool // never shown back: SHOW CREATE and events print ******
	// Unique: no two jobs may set the same value (e.g. a replica server id).
	Unique bool
}

// Int64 returns a pointer to v, for Option.Min and Option.Max.
func Int64(v int64) *int64 { return &v }

// OptionError says which option of which connector is wrong, and why. It
// wraps one of ErrUnknownOption, ErrMissingOption, ErrBadOptionValue.
type OptionError struct {
	Owner  string // connector name, or "job" for WITH options
	Option string
	Err    error
	Detail string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%s: %s %q: %s", e.Owner, e.Err, e.Option, e.Detail)
}

func (e *OptionError) Unwrap() error { return e.Err }

// OptionSet is an ordered list of option declarations.
type OptionSet []Option

// Lookup finds an option by case-insensitive name.
func (s OptionSet) Lookup(name string) (Option, bool) {
	for _, o := range s {
		if strings.EqualFold(o.Name, name) {
			return o, true
		}
	}
	return Option{}, false
}

// Names lists the option names, sorted.
func (s OptionSet) Names() []string {
	names := make([]string, len(s))
	for i, o := range s {
		names[i] = o.Name
	}
	sort.Strings(names)
	return names
}

// Validate checks raw options against the set: every key must be declared,
// every required option present, every value of the declared type. Keys are
// case-insensitive; the returned Config holds canonical names and defaults.
func (s OptionSet) Validate(owner string, raw map[string]string) (Config, error) {
	values := make(map[string]string, len(s))
	// Deterministic error order: check keys sorted.
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opt, ok := s.Lookup(k)
		if !ok {
			return Config{}, &OptionError{Owner: owner, Option: k, Err: ErrUnknownOption,
				Detail: "valid options are " + strings.Join(s.Names(), ", ")}
		}
		if err := opt.check(raw[k]); err != nil {
			return Config{}, &OptionError{Owner: owner, Option: opt.Name, Err: ErrBadOptionValue, Detail: err.Error()}
		}
		values[opt.Name] = raw[k]
	}
	for _, opt := range s {
		if _, ok := values[opt.Name]; ok {
			continue
		}
		if opt.Required {
			return Config{}, &OptionError{Owner: owner, Option: opt.Name, Err: ErrMissingOption,
				Detail: opt.Description}
		}
		if opt.Default != "" {
			values[opt.Name] = opt.Default
		}
	}
	return Config{values: values}, nil
}

func (o Option) check(v string) error {
	switch o.Type {
	case TypeInt:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if o.Min != nil && n < *o.Min {
			return fmt.Errorf("%d is below the minimum %d", n, *o.Min)
		}
		if o.Max != nil && n > *o.Max {
			return fmt.Errorf("%d is above the maximum %d", n, *o.Max)
		}
	case TypeBool:
		if _, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", v)
		}
	case TypeDuration:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a duration (examples: 500ms, 30s, 5m)", v)
		}
		if d < o.MinDuration || d < 0 {
			return fmt.Errorf("%s is shorter than the minimum %s", d, o.MinDuration)
		}
	case TypeEnum:
		for _, e := range o.Enum {
			if strings.EqualFold(e, strings.TrimSpace(v)) {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(o.Enum, ", "))
	case TypeList:
		if len(SplitList(v)) == 0 {
			return fmt.Errorf("the list is empty")
		}
	case TypeRegex:
		if _, err := regexp.Compile(v); err != nil {
			return fmt.Errorf("%q is not a valid regular expression: %v", v, err)
		}
	case TypeString:
	default:
		return fmt.Errorf("option type %q is not supported", o.Type)
	}
	return nil
}

// SplitList splits a comma-separated list, trimming blanks and dropping empties.
func SplitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Config is a validated set of option values, keyed by canonical name, with
// defaults filled in. The getters panic on an undeclared or ill-typed
// option: Validate already refused such input, so that is a programming error.
type Config struct {
	values map[string]string
}

// Has reports whether the option has a value (given or defaulted).
func (c Config) Has(name string) bool { _, ok := c.values[name]; return ok }

// String returns the option's value ("" when absent).
func (c Config) String(name string) string { return c.values[name] }

// Int returns an int option (0 when absent).
func (c Config) Int(name string) int64 {
	v, ok := c.values[name]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		panic(fmt.Sprintf("connectors: option %s=%q is not an int", name, v))
	}
	return n
}

// Bool returns a bool option (false when absent).
func (c Config) Bool(name string) bool {
	v, ok := c.values[name]
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		panic(fmt.Sprintf("connectors: option %s=%q is not a bool", name, v))
	}
	return b
}

// Duration returns a duration option (0 when absent).
func (c Config) Duration(name string) time.Duration {
	v, ok := c.values[name]
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		panic(fmt.Sprintf("connectors: option %s=%q is not a duration", name, v))
	}
	return d
}

// List returns a list option (nil when absent).
func (c Config) List(name string) []string { return SplitList(c.values[name]) }
