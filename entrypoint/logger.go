package main

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// logger writes the lines slog's TextHandler writes, with the attribute
// component=dais-init:
//
//	time=2006-01-02T15:04:05.000Z level=INFO msg="..." component=dais-init key=value
//
// The time is in UTC (a container's local time, unless TZ is set). dais
// serve and `dais init-setup` log with slog itself; dais-init does not
// link log/slog (with encoding/json and reflect it would cost dais-init a
// quarter of its start-up, see docs/benchmarks.md). Attribute values are
// strings, integers and durations.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func newLogger(w io.Writer) *logger { return &logger{w: w} }

func (l *logger) Info(msg string, args ...any)  { l.log("INFO", msg, args) }
func (l *logger) Warn(msg string, args ...any)  { l.log("WARN", msg, args) }
func (l *logger) Error(msg string, args ...any) { l.log("ERROR", msg, args) }

func (l *logger) log(level, msg string, args []any) {
	b := make([]byte, 0, 256)
	b = append(b, "time="...)
	b = appendTime(b, time.Now())
	b = append(b, " level="...)
	b = append(b, level...)
	b = append(b, " msg="...)
	b = appendValue(b, msg)
	b = append(b, " component=dais-init"...)
	for i := 0; i+1 < len(args); i += 2 {
		k, _ := args[i].(string)
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, '=')
		switch v := args[i+1].(type) {
		case string:
			b = appendValue(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case time.Duration:
			b = appendValue(b, v.String())
		default:
			b = append(b, "!BADVALUE"...)
		}
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}

// appendTime writes t in UTC as slog does ("2006-01-02T15:04:05.000Z"),
// computing the date itself: time's calendar methods link its time zone
// loading.
func appendTime(b []byte, t time.Time) []byte {
	pad := func(b []byte, n, width int) []byte {
		s := strconv.Itoa(n)
		for i := len(s); i < width; i++ {
			b = append(b, '0')
		}
		return append(b, s...)
	}
	ms := t.UnixMilli()
	days, rem := ms/86400000, ms%86400000
	if rem < 0 {
		days, rem = days-1, rem+86400000
	}
	y, mo, d := civil(days)
	b = pad(b, y, 4)
	b = append(b, '-')
	b = pad(b, mo, 2)
	b = append(b, '-')
	b = pad(b, d, 2)
	b = append(b, 'T')
	b = pad(b, int(rem/3600000), 2)
	b = append(b, ':')
	b = pad(b, int(rem/60000%60), 2)
	b = append(b, ':')
	b = pad(b, int(rem/1000%60), 2)
	b = append(b, '.')
	b = pad(b, int(rem%1000), 3)
	return append(b, 'Z')
}

// civil is the proleptic Gregorian date of days since 1970-01-01 (Howard
// Hinnant's algorithm).
func civil(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

// appendValue quotes s as slog's TextHandler does: when it is empty or has
// a space, '=', '"', a control or a non-printable character.
func appendValue(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
