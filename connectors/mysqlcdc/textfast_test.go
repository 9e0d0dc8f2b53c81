package mysqlcdc

import (
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// fastCols are the columns appendTextFast serves, one per fast path.
var fastCols = []column{
	{Name: "ti", DataType: "tinyint", ColType: "tinyint(4)"},
	{Name: "i", DataType: "int", ColType: "int(11)"},
	{Name: "bi", DataType: "bigint", ColType: "bigint(20)"},
	{Name: "d", DataType: "decimal", ColType: "decimal(12,2)", Prec: 12, Scale: 2},
	{Name: "d0", DataType: "decimal", ColType: "decimal(18,0)", Prec: 18},
	{Name: "d30", DataType: "decimal", ColType: "decimal(38,30)", Prec: 38, Scale: 30},
	{Name: "dt", DataType: "date", ColType: "date"},
	{Name: "dtm", DataType: "datetime", ColType: "datetime(6)"},
	{Name: "ts", DataType: "timestamp", ColType: "timestamp(3)"},
}

var fastInputs = []string{
	"0", "-0", "1", "-1", "127", "-128", "2147483647", "-2147483648", "123456789012345678", "-123456789012345678",
	"9223372036854775807", "-9223372036854775808", "1234567890123456789", "", "-", "+1", "1a", " 1",
	"0.00", "-0.01", "99999999.99", "-99999999.99", "1.5", "1.", ".5", "1.234", "1234567890123456.78",
	"12345678901234567.89", "0.000000000000000000000000000001", "1-2",
	"1970-01-01", "1000-01-01", "9999-12-31", "2024-02-29", "2023-02-29", "2024-13-01", "2024-00-10", "0000-00-00",
	"0000-01-01", "2024-1-01", "1969-12-31",
	"1970-01-01 00:00:00", "1970-01-01 00:00:00.5", "1000-01-01 00:00:00.000000", "9999-12-31 23:59:59.999999",
	"2024-02-29 12:34:56.000001", "2024-02-29 24:00:00", "2024-02-29 12:60:00", "2024-02-29 12:34:56.", "2024-02-29 12:34:56.1234567",
	"0000-00-00 00:00:00", "1969-12-31 23:59:59.999", "2024-02-29T12:34:56", "2038-01-19 03:14:07.999999",
}

// TestTextFastMatchesSlow checks, for every fast column and input, that
// appendText (with its fast paths) builds exactly what fromText's value
// does, and fails exactly when fromText fails.
func TestTextFastMatchesSlow(t *testing.T) {
	for _, in := range fastInputs {
		for _, c := range fastCols {
			checkTextFast(t, c, []byte(in))
		}
	}
}

func FuzzTextFast(f *testing.F) {
	for _, in := range fastInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, c := range fastCols {
			checkTextFast(t, c, []byte(in))
		}
	})
}

func checkTextFast(t *testing.T, c column, in []byte) {
	t.Helper()
	if err := c.resolve(); err != nil {
		t.Fatal(err)
	}
	alloc := memory.NewGoAllocator()
	fast := array.NewBuilder(alloc, c.typ)
	defer fast.Release()
	slow := array.NewBuilder(alloc, c.typ)
	defer slow.Release()
	fastErr := appendText(fast, &c, in)
	v, slowErr := c.fromText(in)
	if slowErr == nil {
		appendValue(slow, v)
	}
	if (fastErr == nil) != (slowErr == nil) {
		t.Fatalf("%s %q: appendText error %v, fromText error %v", c.ColType, in, fastErr, slowErr)
	}
	if fastErr != nil {
		return
	}
	a, b := fast.NewArray(), slow.NewArray()
	defer a.Release()
	defer b.Release()
	if !array.Equal(a, b) {
		t.Fatalf("%s %q: fast %v, slow %v", c.ColType, in, a, b)
	}
}

func BenchmarkAppendText(b *testing.B) {
	for _, tc := range []struct {
		c  column
		in string
	}{{fastCols[3], "-12345678.90"}, {fastCols[7], "2024-02-29 12:34:56.000001"}, {fastCols[1], "-2147483648"}} {
		c := tc.c
		if err := c.resolve(); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint(c.ColType), func(b *testing.B) {
			bld := array.NewBuilder(memory.NewGoAllocator(), c.typ)
			defer bld.Release()
			in := []byte(tc.in)
			for i := 0; i < b.N; i++ {
				if err := appendText(bld, &c, in); err != nil {
					b.Fatal(err)
				}
				if bld.Len() > 4096 {
					bld.NewArray().Release()
				}
			}
		})
	}
}
