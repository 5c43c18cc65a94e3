package redisnum

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestParseInt(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want int64
		ok   bool
	}{
		{"zero", "0", 0, true},
		{"positive", "42", 42, true},
		{"negative", "-42", -42, true},
		{"max", "9223372036854775807", 1<<63 - 1, true},
		{"min", "-9223372036854775808", -1 << 63, true},
		{"overflow", "9223372036854775808", 0, false},
		{"underflow", "-9223372036854775809", 0, false},
		{"plus sign", "+1", 0, false},
		{"leading zero", "01", 0, false},
		{"negative zero", "-0", 0, false},
		{"space", " 1", 0, false},
		{"trailing space", "1 ", 0, false},
		{"empty", "", 0, false},
		{"minus only", "-", 0, false},
		{"float", "1.0", 0, false},
		{"too long", "000000000000000000001", 0, false},
		{"nul", "1\x00", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseInt([]byte(tc.in))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ParseInt(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// human parses s and formats it back as INCRBYFLOAT would store it.
func human(s string) (string, bool) {
	ld, ok := ParseLongDouble([]byte(s))
	if !ok {
		return "", false
	}
	return string(ld.AppendHuman(nil)), true
}

func TestParseLongDouble(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" means rejected
	}{
		{"integer", "10", "10"},
		{"decimal", "10.5", "10.5"},
		{"long double precision shows", "0.1", "0.1"},
		{"exponent", "3.0e2", "300"},
		{"negative exponent", "5E-3", "0.005"},
		{"leading point", ".5", "0.5"},
		{"trailing point", "5.", "5"},
		{"plus sign", "+1.5", "1.5"},
		{"negative zero", "-0", "0"},
		{"tiny prints as zero", "1e-30", "0"},
		{"hexadecimal", "0x10", "16"},
		{"hexadecimal with exponent", "0x1.8p1", "3"},
		{"hexadecimal upper case", "0X1P-2", "0.25"},
		{"denormal accepted", "1e-4940", "0"},
		{"zero with huge exponent", "0e999999999", "0"},
		{"overflow", "1e4933", ""},
		{"underflow to zero", "1e-5000", ""},
		{"huge exponent", "1e999999999999999999999", ""},
		{"nan", "nan", ""},
		{"negative nan", "-nan", ""},
		{"leading space", " 1", ""},
		{"trailing space", "1 ", ""},
		{"empty", "", ""},
		{"point only", ".", ""},
		{"exponent without digits", "1e", ""},
		{"fractional exponent", "1e5.5", ""},
		{"binary exponent on decimal", "1p3", ""},
		{"two signs", "+-1", ""},
		{"two signs before inf", "+-inf", ""},
		{"hex without digits", "0x", ""},
		{"hex exponent without digits", "0x1p", ""},
		{"binary prefix", "0b1", ""},
		{"underscore", "1_0", ""},
		{"comma", "1,5", ""},
		{"nul", "1\x00", ""},
		{"too long", "1" + strings.Repeat("0", 5*1024), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := human(tc.in)
			if (tc.want == "") == ok || got != tc.want {
				t.Fatalf("ParseLongDouble(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
			}
		})
	}
	// LDBL_MAX prints with all its 4933 digits, as in Redis.
	if got, ok := human("1.18973149535723176502e+4932"); !ok || len(got) != 4933 ||
		!strings.HasPrefix(got, "11897314953572317650212638530309702051690633222946242004403237338917370055229707") {
		t.Errorf("largest long double: %d digits %.40q…, %v", len(got), got, ok)
	}
	for _, s := range []string{"inf", "-inf", "+Infinity", "INF"} {
		ld, ok := ParseLongDouble([]byte(s))
		if !ok || !ld.IsInf() {
			t.Errorf("ParseLongDouble(%q) = %v, %v; want infinity", s, ld.IsInf(), ok)
		}
	}
}

// TestAdd checks sums against values Redis 7.0.15 returns for INCRBYFLOAT.
func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"simple", "10.5", "0.1", "10.6"},
		{"long double shows", "1.1", "1000000.1", "1000001.20000000000004547"},
		{"hex", "1000001.20000000000004547", "0x1.8p1", "1000004.20000000000004547"},
		{"cancel", "1.5", "-1.5", "0"},
		{"negative", "-5", "2.25", "-2.75"},
		{"64-bit mantissa keeps", "1e19", "1", "10000000000000000001"},
		{"64-bit mantissa rounds", "1e20", "1", "100000000000000000000"},
		{"overflow", "1e4932", "1e4932", ""},
		{"infinity", "inf", "1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, okA := ParseLongDouble([]byte(tc.a))
			b, okB := ParseLongDouble([]byte(tc.b))
			if !okA || !okB {
				t.Fatalf("parse %q %q: %v %v", tc.a, tc.b, okA, okB)
			}
			sum, ok := a.Add(b)
			got := ""
			if ok {
				got = string(sum.AppendHuman(nil))
			}
			if got != tc.want {
				t.Fatalf("%s + %s = %q (%v), want %q", tc.a, tc.b, got, ok, tc.want)
			}
		})
	}
}

var strictInt = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// FuzzParseInt compares ParseInt with strconv on Redis's strict syntax.
func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "-1", "9223372036854775807", "-9223372036854775808", "+1", "01", "-0", " 1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseInt([]byte(s))
		want, err := strconv.ParseInt(s, 10, 64)
		wantOK := err == nil && strictInt.MatchString(s) && s != "-0"
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("ParseInt(%q) = %d, %v; want %d, %v", s, got, ok, want, wantOK)
		}
	})
}

// FuzzParseLongDouble: no input panics or runs long, every accepted finite value formats to a
// string that parses again, and adding values never panics.
func FuzzParseLongDouble(f *testing.F) {
	for _, s := range []string{"1.5", "-0.1", "1e308", "0x1p3", ".5", "5.", "inf", "nan", "1e-4940", "1e4933", "1p3", "0x"} {
		f.Add(s, "0.1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		x, okX := ParseLongDouble([]byte(a))
		y, okY := ParseLongDouble([]byte(b))
		if okX && !x.IsInf() {
			s := x.AppendHuman(nil)
			if _, ok := ParseLongDouble(s); !ok {
				t.Fatalf("%q formatted as %q, which does not parse", a, s)
			}
		}
		if okX && okY {
			if sum, ok := x.Add(y); ok {
				sum.AppendHuman(nil)
			}
		}
	})
}
