package mysqlcdc

// Fast paths of fromText for the text a snapshot SELECT returns: integers,
// DECIMALs of up to 18 digits and DATE/DATETIME/TIMESTAMP in the server's
// canonical form are parsed from the bytes without the allocations of
// strconv-on-string, big.Float (decimal128.FromString) or time.Parse. Any
// input off the fast path (more digits, another layout, an invalid date)
// goes to fromText, so both give the same value or the same error;
// TestTextFastMatchesSlow and FuzzTextFast hold them to it.

import (
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
)

// atoiFast parses an optionally signed decimal integer of at most 18
// digits; ok is false for anything else (the caller takes the slow path).
func atoiFast(b []byte) (n int64, ok bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// decimalFast parses DECIMAL text with exactly scale fraction digits and at
// most 18 digits in all into the unscaled integer; a value with more than
// prec significant digits is left to the slow path (which rejects it).
func decimalFast(b []byte, prec, scale int) (n int64, ok bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	digits, frac := 0, -1
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0 && i > 0:
			frac = 0
		default:
			return 0, false
		}
		if digits > 18 {
			return 0, false
		}
	}
	if frac < 0 {
		frac = 0
	}
	if digits == 0 || frac != scale || prec < 18 && n >= pow10[prec] {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// plainDecimal says whether b is [-]digits[.digits], the server's DECIMAL text.
func plainDecimal(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	digits, dot := 0, false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

var pow10 = [19]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// digits2 reads two ASCII digits.
func digits2(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

// daysFromCivil counts days from 1970-01-01 to y-m-d of the proleptic
// Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// dateFast parses YYYY-MM-DD (a valid, non-zero date) into days.
func dateFast(b []byte) (int64, bool) {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y1, ok1 := digits2(b[0:2])
	y2, ok2 := digits2(b[2:4])
	m, ok3 := digits2(b[5:7])
	d, ok4 := digits2(b[8:10])
	y := y1*100 + y2
	if !(ok1 && ok2 && ok3 && ok4) || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d), true
}

// datetimeFast parses YYYY-MM-DD HH:MM:SS[.f{1,6}] into microseconds
// since the epoch (the session is UTC).
func datetimeFast(b []byte) (int64, bool) {
	if len(b) < 19 || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	days, ok := dateFast(b[:10])
	if !ok {
		return 0, false
	}
	h, ok1 := digits2(b[11:13])
	mi, ok2 := digits2(b[14:16])
	s, ok3 := digits2(b[17:19])
	if !(ok1 && ok2 && ok3) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	var us int64
	if rest := b[19:]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 7 {
			return 0, false
		}
		scale := int64(1_000_000)
		for _, c := range rest[1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
			scale /= 10
			us += int64(c-'0') * scale
		}
	}
	return (days*86400+int64(h)*3600+int64(mi)*60+int64(s))*1_000_000 + us, true
}

// appendTextFast appends the value of text b to builder bld when b is on a
// fast path; ok false means nothing was appended.
func appendTextFast(bld array.Builder, c *column, b []byte) bool {
	switch c.kind {
	case kInt:
		n, ok := atoiFast(b)
		return ok && appendInt(bld, n)
	case kDecimal:
		t, is128 := c.typ.(*arrow.Decimal128Type)
		if !is128 {
			return false
		}
		n, ok := decimalFast(b, int(t.Precision), int(t.Scale))
		if !ok {
			return false
		}
		bld.(*array.Decimal128Builder).Append(decimal128.FromI64(n))
		return true
	case kDate:
		d, ok := dateFast(b)
		if !ok {
			return false
		}
		bld.(*array.Date32Builder).Append(arrow.Date32(d))
		return true
	case kDatetime, kTimestamp:
		us, ok := datetimeFast(b)
		if !ok {
			return false
		}
		bld.(*array.TimestampBuilder).Append(arrow.Timestamp(us))
		return true
	}
	return false
}
