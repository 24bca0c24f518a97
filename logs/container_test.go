package logs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func mustTime(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return tm.UnixNano()
}

func TestParseCRI(t *testing.T) {
	tests := []struct {
		name, in string
		want     containerLine
		wantErr  bool
	}{
		{name: "containerd full", in: "2024-03-01T10:11:12.123456789Z stdout F hello world",
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12.123456789Z"), stream: "stdout", msg: []byte("hello world")}},
		{name: "crio offset partial", in: "2024-03-01T10:11:12.5+02:00 stderr P part one ",
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12.5+02:00"), stream: "stderr", partial: true, msg: []byte("part one ")}},
		{name: "empty log", in: "2024-03-01T10:11:12Z stdout F",
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12Z"), stream: "stdout", msg: []byte{}}},
		{name: "empty log with space", in: "2024-03-01T10:11:12Z stdout F ",
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12Z"), stream: "stdout", msg: []byte{}}},
		{name: "tag with flags", in: "2024-03-01T10:11:12Z stdout P:x y",
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12Z"), stream: "stdout", partial: true, msg: []byte("y")}},
		{name: "log keeps spaces", in: "2024-03-01T10:11:12Z stdout F  a  b ",
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12Z"), stream: "stdout", msg: []byte(" a  b ")}},
		{name: "bad stream", in: "2024-03-01T10:11:12Z stdin F x", wantErr: true},
		{name: "bad tag", in: "2024-03-01T10:11:12Z stdout X x", wantErr: true},
		{name: "bad time", in: "2024-13-01T10:11:12Z stdout F x", wantErr: true},
		{name: "plain text", in: "hello world", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "docker json", in: `{"log":"x\n","stream":"stdout","time":"2024-03-01T10:11:12Z"}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCRI([]byte(tc.in))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.ts, got.ts)
			require.Equal(t, tc.want.stream, got.stream)
			require.Equal(t, tc.want.partial, got.partial)
			require.Equal(t, string(tc.want.msg), string(got.msg))
		})
	}
}

func TestParseDocker(t *testing.T) {
	tests := []struct {
		name, in string
		want     containerLine
		wantErr  bool
	}{
		{name: "full", in: `{"log":"hello \"world\"\n","stream":"stdout","time":"2024-03-01T10:11:12.000000001Z"}`,
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12.000000001Z"), stream: "stdout", msg: []byte(`hello "world"`)}},
		{name: "partial", in: `{"log":"no newline","stream":"stderr","time":"2024-03-01T10:11:12Z"}`,
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12Z"), stream: "stderr", partial: true, msg: []byte("no newline")}},
		{name: "escapes and unicode", in: `{"time":"2024-03-01T10:11:12Z","stream":"stdout","log":"tab\t\u00e9\ud83d\ude00\/\n"}`,
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12Z"), stream: "stdout", msg: []byte("tab\té😀/")}},
		{name: "extra fields", in: `{"log":"x\n","attrs":{"a":[1,2.5e3,true,null,"s"]},"stream":"stdout","time":"2024-03-01T10:11:12Z"}`,
			want: containerLine{ts: mustTime(t, "2024-03-01T10:11:12Z"), stream: "stdout", msg: []byte("x")}},
		{name: "no log", in: `{"stream":"stdout","time":"2024-03-01T10:11:12Z"}`, wantErr: true},
		{name: "bad stream", in: `{"log":"x\n","stream":"out","time":"2024-03-01T10:11:12Z"}`, wantErr: true},
		{name: "bad time", in: `{"log":"x\n","stream":"stdout","time":"yesterday"}`, wantErr: true},
		{name: "truncated", in: `{"log":"x\n","stream":"stdout","time":"2024-03-01T10:11:12Z"`, wantErr: true},
		{name: "trailing garbage", in: `{"log":"x\n","stream":"stdout","time":"2024-03-01T10:11:12Z"} x`, wantErr: true},
		{name: "raw control char", in: "{\"log\":\"a\tb\n\",\"stream\":\"stdout\",\"time\":\"2024-03-01T10:11:12Z\"}", wantErr: true},
	}
	var p dockerParser
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.parse([]byte(tc.in))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.ts, got.ts)
			require.Equal(t, tc.want.stream, got.stream)
			require.Equal(t, tc.want.partial, got.partial)
			require.Equal(t, string(tc.want.msg), string(got.msg))
		})
	}
}

func TestJoiner(t *testing.T) {
	type out struct {
		stream, body string
		split        bool
	}
	P := func(stream, msg string) containerLine {
		return containerLine{stream: stream, partial: true, msg: []byte(msg)}
	}
	F := func(stream, msg string) containerLine { return containerLine{stream: stream, msg: []byte(msg)} }
	tests := []struct {
		name    string
		max     int
		in      []containerLine
		want    []out
		pending bool
	}{
		{name: "full lines pass", in: []containerLine{F("stdout", "a"), F("stdout", "b")},
			want: []out{{"stdout", "a", false}, {"stdout", "b", false}}},
		{name: "P P F joined", in: []containerLine{P("stdout", "a"), P("stdout", "b"), F("stdout", "c")},
			want: []out{{"stdout", "abc", false}}},
		{name: "streams interleaved", in: []containerLine{P("stdout", "a"), P("stderr", "x"), F("stdout", "b"), F("stderr", "y")},
			want: []out{{"stdout", "ab", false}, {"stderr", "xy", false}}},
		{name: "pending at end", in: []containerLine{F("stdout", "a"), P("stdout", "b")},
			want: []out{{"stdout", "a", false}}, pending: true},
		{name: "split at max", max: 4, in: []containerLine{P("stdout", "abc"), P("stdout", "def"), F("stdout", "gh")},
			want: []out{{"stdout", "abcd", true}, {"stdout", "efgh", false}}},
		{name: "long full line split", max: 3, in: []containerLine{F("stdout", "abcdefg")},
			want: []out{{"stdout", "abc", true}, {"stdout", "def", true}, {"stdout", "g", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := joiner{maxSize: tc.max}
			var got []out
			for i, l := range tc.in {
				j.add(l, int64(i*100), func(_ int64, s string, b []byte, split bool) {
					got = append(got, out{s, string(b), split})
				})
			}
			require.Equal(t, tc.want, got)
			_, pending := j.pendingStart()
			require.Equal(t, tc.pending, pending)
		})
	}
}

func TestJoinerPendingStart(t *testing.T) {
	j := joiner{}
	emit := func(int64, string, []byte, bool) {}
	j.add(containerLine{stream: "stdout", partial: true, msg: []byte("a")}, 10, emit)
	j.add(containerLine{stream: "stderr", partial: true, msg: []byte("b")}, 20, emit)
	s, ok := j.pendingStart()
	require.True(t, ok)
	require.Equal(t, int64(10), s)
	j.add(containerLine{stream: "stdout", msg: []byte("c")}, 30, emit)
	s, ok = j.pendingStart()
	require.True(t, ok)
	require.Equal(t, int64(20), s, "stderr piece still pending")
}

func TestParseRFC3339(t *testing.T) {
	for _, s := range []string{"2024-02-29T23:59:59.999999999Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.5-01:30",
		"2000-03-01T00:00:00+14:00", "2038-01-19T03:14:08.1Z", "2024-03-01T10:11:12.1234567891234Z"} {
		t.Run(s, func(t *testing.T) {
			got, ok := parseRFC3339([]byte(s))
			require.True(t, ok)
			want, err := time.Parse(time.RFC3339Nano, s)
			if err != nil { // Go rejects more than 9 fraction digits; we truncate
				want, err = time.Parse(time.RFC3339Nano, s[:29]+"Z")
				require.NoError(t, err)
			}
			require.Equal(t, want.UnixNano(), got)
		})
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z", "x"} {
		_, ok := parseRFC3339([]byte(s))
		require.False(t, ok, s)
	}
}

func TestParsePodPath(t *testing.T) {
	tests := []struct {
		in   string
		want podMeta
		ok   bool
	}{
		{"/var/log/pods/default_web-7d4b9_0f6a9c2e-1111-2222-3333-444455556666/nginx/3.log",
			podMeta{"default", "web-7d4b9", "0f6a9c2e-1111-2222-3333-444455556666", "nginx", "3"}, true},
		{"/var/log/pods/kube-system_coredns-1_abc/coredns/0.log.20240101-000000",
			podMeta{"kube-system", "coredns-1", "abc", "coredns", "0"}, true},
		{"/var/log/pods/bad/nginx/0.log", podMeta{}, false},
		{"/var/log/syslog", podMeta{}, false},
		{"/var/log/pods/a_b_c/nginx/x.log", podMeta{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parsePodPath(tc.in)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseCRI(f *testing.F) {
	f.Add("2024-03-01T10:11:12.123456789Z stdout F hello")
	f.Add("2024-03-01T10:11:12+02:00 stderr P:x part")
	f.Add("2024-03-01T10:11:12Z stdout F")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseCRI([]byte(s))
		if err != nil {
			return
		}
		// A parsed line must reassemble to a prefix-consistent input.
		require.True(t, l.stream == "stdout" || l.stream == "stderr")
		require.True(t, strings.HasSuffix(s, string(l.msg)))
		sp := strings.IndexByte(s, ' ')
		tm, err := time.Parse(time.RFC3339Nano, s[:sp])
		if err == nil {
			require.Equal(t, tm.UnixNano(), l.ts, s[:sp])
		}
	})
}

func FuzzParseDocker(f *testing.F) {
	f.Add(`{"log":"hello\n","stream":"stdout","time":"2024-03-01T10:11:12.000000001Z"}`)
	f.Add(`{"log":"\u00e9\ud83d\ude00 part","stream":"stderr","time":"2024-03-01T10:11:12Z","attrs":{"a":[1,{}]}}`)
	f.Add(`{"log":"\ud800x\n","stream":"stdout","time":"2024-03-01T10:11:12Z"}`)
	f.Fuzz(func(t *testing.T, s string) {
		var p dockerParser
		l, err := p.parse([]byte(s))
		if err != nil || !utf8.ValidString(s) {
			return
		}
		// Whatever we accept, encoding/json must read the same way.
		var ref struct {
			Log    *string `json:"log"`
			Stream string  `json:"stream"`
		}
		require.NoError(t, json.Unmarshal([]byte(s), &ref), s)
		require.NotNil(t, ref.Log)
		want := *ref.Log
		if strings.HasSuffix(want, "\n") {
			want = want[:len(want)-1]
			require.False(t, l.partial)
		} else {
			require.True(t, l.partial)
		}
		require.Equal(t, want, string(l.msg))
		require.Equal(t, ref.Stream, l.stream)
	})
}

func FuzzJoiner(f *testing.F) {
	f.Add([]byte("a\x00b\x01c\x02"), 4)
	f.Add([]byte("\x01\x01\x01\x00"), 0)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 0 || max > 64 {
			return
		}
		// Bytes 0-2 are control: 0 = end of a full piece, 1 = partial, 2 = switch stream.
		j := joiner{maxSize: max}
		var in, out [2]strings.Builder
		stream := 0
		var cur []byte
		emit := func(_ int64, s string, b []byte, _ bool) {
			if max > 0 {
				require.LessOrEqual(t, len(b), max)
			}
			out[streamIndex(s)].Write(b)
		}
		names := [2]string{"stdout", "stderr"}
		for i, c := range data {
			switch c {
			case 0, 1:
				in[stream].Write(cur)
				j.add(containerLine{stream: names[stream], partial: c == 1, msg: cur}, int64(i), emit)
				cur = nil
			case 2:
				stream ^= 1
			default:
				cur = append(cur, c)
			}
		}
		j.flush(emit)
		_, pending := j.pendingStart()
		require.False(t, pending)
		for s := range 2 {
			require.Equal(t, in[s].String(), out[s].String())
		}
	})
}

func FuzzDecodeCheckpoint(f *testing.F) {
	tr := &tracked{fp: []byte("2024-03-01T10:11:12Z stdout F x"), metaPath: "/var/log/pods/a_b_c/d/0.log"}
	f.Add(encodeCheckpoint(nil, tr, 12345))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := decodeCheckpoint(v)
		if err != nil {
			return
		}
		// What decodes survives a round trip.
		again, err := decodeCheckpoint(encodeCheckpoint(nil, got, got.offset))
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

func FuzzParseField(f *testing.F) {
	for _, s := range []string{"body", "body.a.b", `attributes["x.y"]`, "resource.k8s", `attributes['a'].b`, "attributes"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := parseField(s)
		if err != nil {
			return
		}
		// The canonical form parses back to the same field.
		again, err := parseField(fl.String())
		require.NoError(t, err, fl.String())
		require.Equal(t, fl, again)
	})
}
