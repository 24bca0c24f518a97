package logs

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Container log formats. formatAuto detects per line: a line starting with
// '{' is Docker JSON, anything else CRI (containerd or CRI-O).
type containerFormat uint8

const (
	formatAuto containerFormat = iota
	formatDocker
	formatCRI // containerd and CRI-O write the same line shape
)

func parseContainerFormat(s string) (containerFormat, error) {
	switch s {
	case "", "auto":
		return formatAuto, nil
	case "docker":
		return formatDocker, nil
	case "crio", "containerd", "cri":
		return formatCRI, nil
	}
	return 0, errors.New("want auto, docker, crio or containerd")
}

// stream names are constants so a record's log.iostream costs no allocation.
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// containerLine is one parsed container log line. msg aliases the input
// (CRI) or the parser's scratch buffer (Docker): copy it before keeping it.
type containerLine struct {
	ts      int64 // unix nanoseconds
	stream  string
	partial bool
	msg     []byte
}

var (
	errCRIShape     = errors.New("not a cri line: want \"<time> <stream> <tag> <log>\"")
	errCRIStream    = errors.New("not a cri line: stream is not stdout or stderr")
	errBadTime      = errors.New("bad rfc3339 time")
	errDockerShape  = errors.New("not a docker json line")
	errDockerStream = errors.New("docker json line: stream is not stdout or stderr")
	errDockerNoLog  = errors.New("docker json line: no log field")
)

// parseCRI parses "<time> <stream> <tag> <log>", where tag is P (partial)
// or F (full), possibly followed by ":"-separated flags.
func parseCRI(line []byte) (containerLine, error) {
	var out containerLine
	sp := indexByte(line, ' ')
	if sp <= 0 {
		return out, errCRIShape
	}
	ts, ok := parseRFC3339(line[:sp])
	if !ok {
		return out, errBadTime
	}
	out.ts = ts
	rest := line[sp+1:]
	sp = indexByte(rest, ' ')
	if sp < 0 {
		return out, errCRIShape
	}
	switch string(rest[:sp]) { // no allocation: the compiler compares in place
	case streamStdout:
		out.stream = streamStdout
	case streamStderr:
		out.stream = streamStderr
	default:
		return out, errCRIStream
	}
	rest = rest[sp+1:]
	sp = indexByte(rest, ' ')
	tag := rest
	if sp >= 0 {
		tag = rest[:sp]
		rest = rest[sp+1:]
	} else {
		rest = rest[len(rest):]
	}
	if len(tag) == 0 {
		return out, errCRIShape
	}
	first := tag
	if i := indexByte(tag, ':'); i >= 0 {
		first = tag[:i]
	}
	switch string(first) {
	case "P":
		out.partial = true
	case "F":
	default:
		return out, errCRIShape
	}
	out.msg = rest
	return out, nil
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// parseRFC3339 parses "2006-01-02T15:04:05[.fraction](Z|±hh:mm)" without
// allocating, returning unix nanoseconds.
func parseRFC3339(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	rest := b[19:]
	var nanos int64
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		scale := int64(100_000_000)
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			if scale > 0 {
				nanos += int64(rest[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == 1 {
			return 0, false
		}
		rest = rest[i:]
	}
	var offset int64
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	days := daysFromCivil(year, month, day)
	secs := days*86400 + int64(hour*3600+minute*60+sec) - offset
	return secs*1_000_000_000 + nanos, true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
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

// daysFromCivil is Howard Hinnant's algorithm: days since 1970-01-01.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// dockerParser parses Docker's json-file lines
// ({"log":"...\n","stream":"stdout","time":"..."}) into a reused buffer.
type dockerParser struct {
	scratch []byte
}

// parse returns the line; msg aliases p's scratch buffer until the next
// call. A log that does not end in "\n" is partial (Docker splits lines
// longer than 16 KiB); the newline of the last piece is removed.
func (p *dockerParser) parse(line []byte) (containerLine, error) {
	var out containerLine
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return out, errDockerShape
	}
	i = skipSpace(line, i+1)
	p.scratch = p.scratch[:0]
	var haveLog, haveTime bool
	logStart, logEnd := 0, 0
	if i < len(line) && line[i] == '}' {
		return out, errDockerNoLog
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return out, errDockerShape
		}
		kStart := len(p.scratch)
		var err error
		p.scratch, i, err = unquote(p.scratch, line, i)
		if err != nil {
			return out, err
		}
		key := p.scratch[kStart:]
		i = skipSpace(line, i)
		if i >= len(line) || line[i] != ':' {
			return out, errDockerShape
		}
		i = skipSpace(line, i+1)
		switch string(key) {
		case "log":
			p.scratch = p.scratch[:kStart]
			if i >= len(line) || line[i] != '"' {
				return out, errDockerShape
			}
			logStart = len(p.scratch)
			p.scratch, i, err = unquote(p.scratch, line, i)
			if err != nil {
				return out, err
			}
			logEnd = len(p.scratch)
			haveLog = true
		case "stream":
			p.scratch = p.scratch[:kStart]
			if i >= len(line) || line[i] != '"' {
				return out, errDockerShape
			}
			s := len(p.scratch)
			p.scratch, i, err = unquote(p.scratch, line, i)
			if err != nil {
				return out, err
			}
			switch string(p.scratch[s:]) {
			case streamStdout:
				out.stream = streamStdout
			case streamStderr:
				out.stream = streamStderr
			default:
				return out, errDockerStream
			}
			p.scratch = p.scratch[:s]
		case "time":
			p.scratch = p.scratch[:kStart]
			if i >= len(line) || line[i] != '"' {
				return out, errDockerShape
			}
			s := len(p.scratch)
			p.scratch, i, err = unquote(p.scratch, line, i)
			if err != nil {
				return out, err
			}
			ts, ok := parseRFC3339(p.scratch[s:])
			if !ok {
				return out, errBadTime
			}
			out.ts = ts
			haveTime = true
			p.scratch = p.scratch[:s]
		default:
			p.scratch = p.scratch[:kStart]
			i, err = skipValue(line, i, 0)
			if err != nil {
				return out, err
			}
		}
		i = skipSpace(line, i)
		if i >= len(line) {
			return out, errDockerShape
		}
		if line[i] == ',' {
			i = skipSpace(line, i+1)
			continue
		}
		if line[i] != '}' {
			return out, errDockerShape
		}
		if skipSpace(line, i+1) != len(line) {
			return out, errDockerShape
		}
		break
	}
	if !haveLog {
		return out, errDockerNoLog
	}
	if out.stream == "" || !haveTime {
		return out, errDockerShape
	}
	msg := p.scratch[logStart:logEnd]
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	} else {
		out.partial = true
	}
	out.msg = msg
	return out, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// unquote appends the JSON string starting at b[i] (a '"') to dst and
// returns the index after its closing quote.
func unquote(dst, b []byte, i int) ([]byte, int, error) {
	i++ // opening quote
	for {
		// Copy the run of plain bytes in one append.
		j := i
		for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
			j++
		}
		dst = append(dst, b[i:j]...)
		i = j
		if i >= len(b) || b[i] < 0x20 {
			return dst, i, errDockerShape
		}
		if b[i] == '"' {
			return dst, i + 1, nil
		}
		// escape
		if i+1 >= len(b) {
			return dst, i, errDockerShape
		}
		switch c := b[i+1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
			i += 2
		case 'b':
			dst = append(dst, '\b')
			i += 2
		case 'f':
			dst = append(dst, '\f')
			i += 2
		case 'n':
			dst = append(dst, '\n')
			i += 2
		case 'r':
			dst = append(dst, '\r')
			i += 2
		case 't':
			dst = append(dst, '\t')
			i += 2
		case 'u':
			r, ok := hex4(b, i+2)
			if !ok {
				return dst, i, errDockerShape
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(-1), false
				if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
					r2, ok = hex4(b, i+2)
				}
				if ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						dst = utf8.AppendRune(dst, dec)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, i, errDockerShape
		}
	}
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}

// skipValue skips one JSON value starting at b[i].
func skipValue(b []byte, i, depth int) (int, error) {
	if depth > 64 {
		return i, errDockerShape
	}
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, errDockerShape
	}
	switch b[i] {
	case '"':
		var err error
		_, i, err = unquote(nil, b, i)
		return i, err
	case '{', '[':
		closer := byte('}')
		obj := b[i] == '{'
		if !obj {
			closer = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			var err error
			if obj {
				if i >= len(b) || b[i] != '"' {
					return i, errDockerShape
				}
				if _, i, err = unquote(nil, b, i); err != nil {
					return i, err
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ':' {
					return i, errDockerShape
				}
				i++
			}
			if i, err = skipValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, errDockerShape
			}
			if b[i] == closer {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, errDockerShape
			}
			i = skipSpace(b, i+1)
		}
	case 't':
		return skipLit(b, i, "true")
	case 'f':
		return skipLit(b, i, "false")
	case 'n':
		return skipLit(b, i, "null")
	default:
		j := i
		if j < len(b) && b[j] == '-' {
			j++
		}
		start := j
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		if j == start {
			return i, errDockerShape
		}
		if _, err := strconv.ParseFloat(string(b[i:j]), 64); err != nil {
			return i, errDockerShape
		}
		return j, nil
	}
}

func skipLit(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, errDockerShape
	}
	return i + len(lit), nil
}

// joiner joins partial container lines (CRI "P", Docker pieces without a
// final newline) of one file, one pending record per stream, up to maxSize
// bytes; a longer record is emitted in maxSize pieces.
type joiner struct {
	maxSize int
	pend    [2]pending // stdout, stderr
}

type pending struct {
	active bool
	ts     int64
	start  int64 // file offset of the first piece
	buf    []byte
}

func streamIndex(s string) int {
	if s == streamStderr {
		return 1
	}
	return 0
}

// add feeds one parsed line that started at file offset start. It calls
// emit for every complete record (the body aliases the joiner's buffer, or
// the line, only during the call); split reports records cut at maxSize.
func (j *joiner) add(l containerLine, start int64, emit func(ts int64, stream string, body []byte, split bool)) {
	p := &j.pend[streamIndex(l.stream)]
	if !p.active && !l.partial {
		j.emitCut(l.ts, l.stream, l.msg, emit)
		return
	}
	if !p.active {
		p.active = true
		p.ts = l.ts
		p.start = start
		p.buf = p.buf[:0]
	}
	p.buf = append(p.buf, l.msg...)
	for j.maxSize > 0 && len(p.buf) > j.maxSize {
		emit(p.ts, l.stream, p.buf[:j.maxSize], true)
		n := copy(p.buf, p.buf[j.maxSize:])
		p.buf = p.buf[:n]
		p.start = start // the rest is re-read from this line on restart
	}
	if !l.partial {
		emit(p.ts, l.stream, p.buf, false)
		p.active = false
		p.buf = p.buf[:0]
		if cap(p.buf) > 64<<10 {
			p.buf = nil // a rare long record does not pin its buffer
		}
	}
}

func (j *joiner) emitCut(ts int64, stream string, msg []byte, emit func(int64, string, []byte, bool)) {
	for j.maxSize > 0 && len(msg) > j.maxSize {
		emit(ts, stream, msg[:j.maxSize], true)
		msg = msg[j.maxSize:]
	}
	emit(ts, stream, msg, false)
}

// flush emits every pending record as it is (the F line never came).
func (j *joiner) flush(emit func(ts int64, stream string, body []byte, split bool)) {
	for i := range j.pend {
		p := &j.pend[i]
		if p.active {
			s := streamStdout
			if i == 1 {
				s = streamStderr
			}
			emit(p.ts, s, p.buf, false)
			p.active = false
			p.buf = p.buf[:0]
		}
	}
}

// pendingStart returns the offset of the oldest pending piece.
func (j *joiner) pendingStart() (int64, bool) {
	var start int64
	ok := false
	for i := range j.pend {
		if p := &j.pend[i]; p.active && (!ok || p.start < start) {
			start, ok = p.start, true
		}
	}
	return start, ok
}

func (j *joiner) reset() {
	for i := range j.pend {
		j.pend[i].active = false
		j.pend[i].buf = j.pend[i].buf[:0]
	}
}

// podMeta is what a /var/log/pods path says about its container.
type podMeta struct {
	namespace, pod, uid, container, restart string
}

// parsePodPath reads .../<namespace>_<pod>_<uid>/<container>/<restart>.log
// (a rotated name such as 0.log.20240101-000000 is accepted too).
func parsePodPath(p string) (podMeta, bool) {
	p = filepath.ToSlash(p)
	file := p[strings.LastIndexByte(p, '/')+1:]
	dir := p[:max(strings.LastIndexByte(p, '/'), 0)]
	container := dir[strings.LastIndexByte(dir, '/')+1:]
	dir = dir[:max(strings.LastIndexByte(dir, '/'), 0)]
	podDir := dir[strings.LastIndexByte(dir, '/')+1:]
	restart, _, ok := strings.Cut(file, ".log")
	if !ok || restart == "" || container == "" {
		return podMeta{}, false
	}
	for _, c := range restart {
		if c < '0' || c > '9' {
			return podMeta{}, false
		}
	}
	parts := strings.Split(podDir, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return podMeta{}, false
	}
	for _, c := range parts[2] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return podMeta{}, false
		}
	}
	return podMeta{namespace: parts[0], pod: parts[1], uid: parts[2], container: container, restart: restart}, true
}
