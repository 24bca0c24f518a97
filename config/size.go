package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ByteSize is a number of bytes written in YAML as an integer (1073741824)
// or a size string: "1GiB", "512MiB", "64KiB" (powers of 1024), "1GB",
// "500MB", "10kB" (powers of 1000); the Kubernetes spellings "Gi", "Mi",
// "Ki", "G", "M", "k" work too, and a unit may follow a decimal ("1.5GiB").
type ByteSize int64

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20,
	"gi": 1 << 30, "gib": 1 << 30, "ti": 1 << 40, "tib": 1 << 40,
}

// ParseByteSize parses an integer byte count or a size string (see
// ByteSize). The error never repeats the input.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i < 0 {
			return 0, fmt.Errorf("parse size: negative")
		}
		return ByteSize(i), nil
	}
	cut := len(s)
	for cut > 0 && (s[cut-1] < '0' || s[cut-1] > '9') && s[cut-1] != '.' {
		cut--
	}
	num, unit := strings.TrimSpace(s[:cut]), strings.ToLower(strings.TrimSpace(s[cut:]))
	mult, ok := sizeUnits[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("parse size: want a number with an optional unit such as MiB or GB")
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsNaN(f) {
		return 0, fmt.Errorf("parse size: want a non-negative number")
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("parse size: too large")
	}
	return ByteSize(v), nil
}

// UnmarshalYAML lets plain yaml.v3 decoding take the same forms.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size like 512MiB or a number of bytes")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String gives the size in the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
