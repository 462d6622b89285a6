package colproj

// pow10 holds 10^0 … 10^18, every power an int64 holds.
var pow10 = func() (t [19]int64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return
}()

// maxExp bounds an exponent's magnitude while it is parsed: beyond it a
// number is far outside any decimal(18, s), and the sum cannot overflow.
const maxExp = 1 << 30

// parseDecimal parses num, which must be a JSON number, as decimal(p, s)'s
// unscaled value: exactly, or not at all (ok false) when it has more than
// s significant fraction digits or more than p digits in all.
func parseDecimal(num []byte, p, s int) (int64, bool) {
	sc := scanner{b: num}
	if len(num) == 0 || !sc.num() || sc.i != len(num) {
		return 0, false
	}
	neg := num[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	// The digits, integer part then fraction, and where the point is
	// among them (after intLen of them, moved by the exponent).
	intStart := i
	for i < len(num) && isDigit(num[i]) {
		i++
	}
	intDigits := num[intStart:i]
	var fracDigits []byte
	if i < len(num) && num[i] == '.' {
		j := i + 1
		for i = j; i < len(num) && isDigit(num[i]); i++ {
		}
		fracDigits = num[j:i]
	}
	exp := 0
	if i < len(num) { // e or E
		i++
		eneg := false
		if num[i] == '+' || num[i] == '-' {
			eneg = num[i] == '-'
			i++
		}
		for ; i < len(num); i++ {
			if exp < maxExp {
				exp = exp*10 + int(num[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	digit := func(k int) byte { // the k-th of intDigits+fracDigits
		if k < len(intDigits) {
			return intDigits[k]
		}
		return fracDigits[k-len(intDigits)]
	}
	n := len(intDigits) + len(fracDigits)
	lo, hi := 0, n // significant digits: [lo, hi)
	for lo < hi && digit(lo) == '0' {
		lo++
	}
	for hi > lo && digit(hi-1) == '0' {
		hi--
	}
	if lo == hi {
		return 0, true // zero, however written
	}
	// value = D × 10^(point - hi), D the digits [lo, hi); unscaled = value ×
	// 10^s = D × 10^e.
	point := len(intDigits) + exp
	e := point - hi + s
	if e < 0 || hi-lo+e > p {
		return 0, false // inexact at scale s, or more than p digits
	}
	var u int64
	for k := lo; k < hi; k++ {
		u = u*10 + int64(digit(k)-'0')
	}
	u *= pow10[e] // hi-lo+e <= p <= 18 digits: fits
	if neg {
		u = -u
	}
	return u, true
}

// parseTimestamp parses an RFC 3339 date-time into microseconds since the
// Unix epoch, UTC, truncating sub-microsecond digits toward the past.
func parseTimestamp(b []byte) (int64, bool) {
	// 2006-01-02T15:04:05 is 19 bytes, then fraction, then the zone.
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	if t := b[10]; t != 'T' && t != 't' && t != ' ' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := b[19:]
	nanos := 0
	if rest[0] == '.' {
		k := 1
		for k < len(rest) && isDigit(rest[k]) {
			k++
		}
		if k == 1 || k > 10 {
			return 0, false // no digits, or finer than nanoseconds
		}
		for j := 1; j < 10; j++ {
			nanos *= 10
			if j < k {
				nanos += int(rest[j] - '0')
			}
		}
		rest = rest[k:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return secs*1_000_000 + int64(nanos/1000), true
}

// digits parses a run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to the proleptic
// Gregorian date (Howard Hinnant's days_from_civil).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
