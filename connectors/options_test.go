package connectors

import (
	"errors"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	set := OptionSet{
		{Name: "n", Type: TypeInt, Default: "5", Min: Int64(1), Max: Int64(9)},
		{Name: "d", Type: TypeDuration, Default: "1s"},
		{Name: "b", Type: TypeBool},
		{Name: "e", Type: TypeEnum, Enum: []string{"x", "y"}},
		{Name: "req", Type: TypeString, Required: true},
		{Name: "l", Type: TypeList},
	}
	cfg, err := set.Validate("c", map[string]string{"REQ": "v", "B": "true", "l": "a, b,,c"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Int("n") != 5 || cfg.Duration("d") != time.Second || !cfg.Bool("b") || cfg.String("req") != "v" ||
		len(cfg.List("l")) != 3 || cfg.Has("e") {
		t.Fatalf("config: %+v", cfg)
	}
	for raw, want := range map[string]error{
		"n=0": ErrBadOptionValue, "n=10": ErrBadOptionValue, "n=x": ErrBadOptionValue, "d=5": ErrBadOptionValue,
		"b=maybe": ErrBadOptionValue, "e=z": ErrBadOptionValue, "zz=1": ErrUnknownOption, "l= , ": ErrBadOptionValue,
	} {
		k, v, _ := cut(raw)
		_, err := set.Validate("c", map[string]string{"req": "v", k: v})
		var oe *OptionError
		if !errors.Is(err, want) || !errors.As(err, &oe) || oe.Owner != "c" {
			t.Errorf("%s: %v, want %v", raw, err, want)
		}
	}
	if _, err := set.Validate("c", nil); !errors.Is(err, ErrMissingOption) {
		t.Errorf("missing: %v", err)
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	src := Spec{Name: "S", Kind: KindSource, NewSource: func(Config, Env) (Source, error) { return nil, nil }}
	if err := r.Register(src); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(src); !errors.Is(err, ErrDuplicateRegister) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := r.Register(Spec{Name: "k", Kind: KindSink}); err == nil {
		t.Fatal("sink without factory accepted")
	}
	if _, err := r.Lookup("s", KindSource); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup("s", KindSink); !errors.Is(err, ErrUnknownConnector) {
		t.Fatalf("wrong kind: %v", err)
	}
}
