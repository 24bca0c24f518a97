package enrich

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPodIndex(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(1_700_000_000+int64(s), 0) }
	done := &cachedPod{Namespace: "ns", Name: "job-1", UID: "u1", IPs: []string{"10.0.0.1"}, StartTime: at(0), Finished: true}
	live := &cachedPod{Namespace: "ns", Name: "web", UID: "u2", IPs: []string{"10.0.0.1", "fd00::1"}, StartTime: at(-60)}
	moved := &cachedPod{Namespace: "ns", Name: "web", UID: "u2", IPs: []string{"10.0.0.2"}, StartTime: at(-60)}
	host := &cachedPod{Namespace: "kube-system", Name: "proxy", UID: "u3", IPs: []string{"192.168.0.10"}, HostNetwork: true}

	x := newPodIndex()
	for _, p := range []*cachedPod{done, live, host} {
		x.update(nil, p)
	}
	find := func(kind byte, v string) string {
		if p := x.find(podID{kind: kind, value: v}); p != nil {
			return p.Name + "@" + p.IPs[0]
		}
		return ""
	}
	require.Equal(t, "web@10.0.0.1", find('i', "10.0.0.1"), "a live pod wins over a newer finished one")
	require.Equal(t, "web@10.0.0.1", find('i', "fd00::1"))
	require.Equal(t, "", find('i', "192.168.0.10"), "host-network pods share the node's IP")
	require.Equal(t, "proxy@192.168.0.10", find('u', "u3"))
	require.Equal(t, "job-1@10.0.0.1", find('n', "ns/job-1"))

	x.update(live, moved)
	require.Equal(t, "job-1@10.0.0.1", find('i', "10.0.0.1"), "the old IP leaves with the old version")
	require.Equal(t, "", find('i', "fd00::1"))
	require.Equal(t, "web@10.0.0.2", find('i', "10.0.0.2"))
	require.Equal(t, "web@10.0.0.2", find('u', "u2"))

	x.update(nil, moved) // a relist adds a pod the index holds
	x.update(live, nil)  // a delete carrying an older version drops the current one
	require.Equal(t, "", find('i', "10.0.0.2"))
	require.Equal(t, "", find('n', "ns/web"))
	require.Equal(t, "", find('u', "u2"))

	x.update(done, nil)
	x.update(host, nil)
	require.Empty(t, x.byKey)
	require.Empty(t, x.byIP)
	require.Empty(t, x.byUID)
}
