package cluster

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Role is what a member does in the cluster.
type Role string

// Roles. A member with RoleAll counts as a gateway and as an agent.
const (
	RoleAgent   Role = "agent"
	RoleGateway Role = "gateway"
	RoleAll     Role = "all"
)

// has reports whether a member of role r serves role want. RoleAll as want
// matches every member.
func (r Role) has(want Role) bool {
	return want == RoleAll || r == want || r == RoleAll
}

func (r Role) valid() bool {
	return r == RoleAgent || r == RoleGateway || r == RoleAll
}

// Profiles for the memberlist timing.
const (
	ProfileLAN   = "lan"   // memberlist.DefaultLANConfig
	ProfileLocal = "local" // memberlist.DefaultLocalConfig: loopback and tests
)

// DefaultPort is the gossip port used when --join names no port.
const DefaultPort = 7946

// DefaultLeaderDuty is the duty whose leader watches Kubernetes events.
const DefaultLeaderDuty = "k8s-events"

// Config configures a Node. The zero value is not usable; start from
// DefaultConfig.
type Config struct {
	NodeName      string   // unique member name; default the hostname (pod name)
	ClusterName   string   // members of another cluster name are refused
	BindAddr      string   // address to listen on for gossip (UDP and TCP)
	BindPort      int      // 0 picks a free port
	AdvertiseAddr string   // address others use to reach this member; "" = detected
	AdvertisePort int      // 0 = BindPort (or the picked port)
	Join          []string // HOST[:PORT] entries, comma lists allowed; names are re-resolved on every attempt
	Keys          [][]byte // gossip encryption keys (16, 24 or 32 bytes); the first encrypts, all decrypt
	Role          Role
	Meta          Meta   // advertised metadata; Role, Cluster and NodeName are filled from the Config
	Profile       string // ProfileLAN (default) or ProfileLocal

	// Overrides of the profile's timing; zero keeps the profile's value.
	GossipInterval time.Duration
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	SuspicionMult  int
	// PushPullInterval is the anti-entropy period: a full state exchange
	// with one random member, which repairs whatever gossip missed.
	PushPullInterval time.Duration

	// RejoinInterval re-runs the join even when this member is not alone,
	// which heals a partition whose sides both declared the other dead.
	// Zero disables it; a member that is alone always retries with backoff.
	RejoinInterval time.Duration
	// LeaveTimeout bounds the graceful leave on stop.
	LeaveTimeout time.Duration
	// Duties are the duties whose leader Snapshot reports and whose leader
	// flag is exported as a metric. Duties that come and go (one per
	// namespace) are reported through Node.SetDuties instead.
	Duties []string
	// TombstoneTTL is how long a deleted state key's tombstone is kept
	// after this member learned of it; zero: DefaultTombstoneTTL.
	TombstoneTTL time.Duration
}

// DefaultConfig returns the configuration used when nothing is set:
// bind :7946, node name = hostname, cluster "obs", role all, LAN profile.
func DefaultConfig() Config {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "obs"
	}
	return Config{
		NodeName:       name,
		ClusterName:    "obs",
		BindAddr:       "0.0.0.0",
		BindPort:       DefaultPort,
		Role:           RoleAll,
		Profile:        ProfileLAN,
		RejoinInterval: time.Minute,
		LeaveTimeout:   5 * time.Second,
		Duties:         []string{DefaultLeaderDuty},
		// memberlist's LAN profile exchanges full state every 30 s. A pod
		// restarted under its old name starts a new incarnation count that
		// others ignore until a push/pull tells it to refute its own death
		// record; 5 s bounds how long it looks dead. The cost is one state
		// exchange (members × ~200 bytes) per member every 5 s.
		PushPullInterval: 5 * time.Second,
	}
}

// LoadKeyFile reads gossip keys from a file: one base64 key per line
// (16, 24 or 32 bytes once decoded), blank lines and # comments ignored.
// The first key is the primary one. Errors never contain key material.
func LoadKeyFile(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cluster key file: %w", err)
	}
	return parseKeys(raw)
}

func parseKeys(raw []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			// The decoder's error only names a byte offset, but keep the
			// text fixed so no key material can ever leak into it.
			return nil, fmt.Errorf("decode cluster key on line %d: not valid base64", line)
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("check cluster key on line %d: %w", line, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read cluster key file: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("read cluster key file: no key found")
	}
	return keys, nil
}

func checkKey(k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("key is %d bytes, want 16, 24 or 32", len(k))
}

// validate checks the Config; it never mentions key material.
func (c *Config) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name is empty"))
	}
	if c.ClusterName == "" {
		errs = append(errs, errors.New("cluster name is empty"))
	}
	if !c.Role.valid() {
		errs = append(errs, fmt.Errorf("role %q is not agent, gateway or all", c.Role))
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		errs = append(errs, fmt.Errorf("bind port %d out of range", c.BindPort))
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, fmt.Errorf("advertise port %d out of range", c.AdvertisePort))
	}
	switch c.Profile {
	case "", ProfileLAN, ProfileLocal:
	default:
		errs = append(errs, fmt.Errorf("profile %q is not %q or %q", c.Profile, ProfileLAN, ProfileLocal))
	}
	for i, k := range c.Keys {
		if err := checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("cluster key %d: %w", i+1, err))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"gossip interval", c.GossipInterval}, {"probe interval", c.ProbeInterval},
		{"probe timeout", c.ProbeTimeout}, {"rejoin interval", c.RejoinInterval},
		{"leave timeout", c.LeaveTimeout}, {"push/pull interval", c.PushPullInterval},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if c.SuspicionMult < 0 {
		errs = append(errs, fmt.Errorf("suspicion multiplier %d is negative", c.SuspicionMult))
	}
	if _, err := joinTargets(c.Join, 0); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SplitAddr parses a --cluster-bind or --cluster-advertise value:
// "HOST:PORT", ":PORT" (any address) or "HOST" (defaultPort).
func SplitAddr(s string, defaultPort int) (string, int, error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole value is the host (IPv6 literals included).
		host, portText = strings.Trim(s, "[]"), strconv.Itoa(defaultPort)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("parse address %q: bad port %q", s, portText)
	}
	return host, port, nil
}

// joinTarget is one --join entry split into host and port.
type joinTarget struct {
	host string
	port string
}

// joinTargets splits the join entries (comma lists allowed). defaultPort is
// used for entries without a port.
func joinTargets(entries []string, defaultPort int) ([]joinTarget, error) {
	var out []joinTarget
	for _, e := range entries {
		for _, s := range strings.Split(e, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			host, port := s, fmt.Sprint(defaultPort)
			if h, p, err := net.SplitHostPort(s); err == nil {
				host, port = h, p
			}
			if host == "" {
				return nil, fmt.Errorf("join address %q has no host", s)
			}
			out = append(out, joinTarget{host: host, port: port})
		}
	}
	return out, nil
}

// memberlistConfig builds the memberlist configuration for the profile and
// overrides; delegates and logger are set by the Node.
func (c *Config) memberlistConfig() (*memberlist.Config, error) {
	var mc *memberlist.Config
	if c.Profile == ProfileLocal {
		mc = memberlist.DefaultLocalConfig()
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = c.NodeName
	mc.BindAddr = c.BindAddr
	if mc.BindAddr == "" {
		mc.BindAddr = "0.0.0.0"
	}
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if c.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	if c.GossipInterval > 0 {
		mc.GossipInterval = c.GossipInterval
	}
	if c.ProbeInterval > 0 {
		mc.ProbeInterval = c.ProbeInterval
	}
	if c.ProbeTimeout > 0 {
		mc.ProbeTimeout = c.ProbeTimeout
	}
	if c.SuspicionMult > 0 {
		mc.SuspicionMult = c.SuspicionMult
	}
	if c.PushPullInterval > 0 {
		mc.PushPullInterval = c.PushPullInterval
	}
	if len(c.Keys) > 0 {
		kr, err := memberlist.NewKeyring(c.Keys, c.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("build keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	return mc, nil
}
