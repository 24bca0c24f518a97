package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Resource attribute names the k8sattributes processor reads and writes.
const (
	attrNamespaceName   = "k8s.namespace.name"
	attrPodName         = "k8s.pod.name"
	attrPodUID          = "k8s.pod.uid"
	attrPodIP           = "k8s.pod.ip"
	attrPodStartTime    = "k8s.pod.start_time"
	attrNodeName        = "k8s.node.name"
	attrReplicaSetName  = "k8s.replicaset.name"
	attrReplicaSetUID   = "k8s.replicaset.uid"
	attrDeploymentName  = "k8s.deployment.name"
	attrDeploymentUID   = "k8s.deployment.uid"
	attrDaemonSetName   = "k8s.daemonset.name"
	attrDaemonSetUID    = "k8s.daemonset.uid"
	attrStatefulSetName = "k8s.statefulset.name"
	attrStatefulSetUID  = "k8s.statefulset.uid"
	attrJobName         = "k8s.job.name"
	attrJobUID          = "k8s.job.uid"
	attrCronJobName     = "k8s.cronjob.name"
	attrCronJobUID      = "k8s.cronjob.uid"
	attrContainerName   = "k8s.container.name"
	attrImageName       = "container.image.name"
	attrImageTag        = "container.image.tag"
)

// k8sMetadataKeys lists every extract.metadata key obs supports.
var k8sMetadataKeys = []string{
	attrNamespaceName, attrPodName, attrPodUID, attrPodStartTime, attrNodeName,
	attrReplicaSetName, attrReplicaSetUID, attrDeploymentName, attrDeploymentUID,
	attrDaemonSetName, attrDaemonSetUID, attrStatefulSetName, attrStatefulSetUID,
	attrJobName, attrJobUID, attrCronJobName, attrCronJobUID, attrImageName, attrImageTag,
}

// k8sDefaultMetadata is what the Collector extracts when extract.metadata
// is empty.
var k8sDefaultMetadata = []string{
	attrNamespaceName, attrPodName, attrPodUID, attrPodStartTime, attrDeploymentName, attrNodeName,
	attrImageName, attrImageTag,
}

// K8sAttributesConfig is the Collector's `k8sattributes` processor.
type K8sAttributesConfig struct {
	// AuthType is how the process reaches the API server: serviceAccount
	// (default), kubeConfig or none. roles builds the client with
	// KubeClient; the processor itself only validates it.
	AuthType string `yaml:"auth_type"`
	// Passthrough (agents) only adds k8s.pod.ip from the connection's peer
	// address and never talks to the API server. Default false.
	Passthrough bool `yaml:"passthrough"`
	// Extract says which attributes to add.
	Extract K8sExtractConfig `yaml:"extract"`
	// PodAssociation lists the rules that find a resource's pod, tried in
	// order. Default: resource attribute k8s.pod.ip, then k8s.pod.uid,
	// then the connection.
	PodAssociation []K8sPodAssociation `yaml:"pod_association"`
	// Filter narrows the pods watched.
	Filter K8sFilterConfig `yaml:"filter"`
	// WaitForMetadata makes the first batches wait until the cache has
	// listed everything, for at most WaitForMetadataTimeout. Default false.
	WaitForMetadata bool `yaml:"wait_for_metadata"`
	// WaitForMetadataTimeout bounds that wait. Default 10s.
	WaitForMetadataTimeout time.Duration `yaml:"wait_for_metadata_timeout"`
	// PodWaitTimeout is how long a batch waits for a pod that is not in
	// the cache yet (a pod that started a moment ago) before it passes
	// unenriched and is counted. One budget per batch; a pod that was
	// already waited for in vain is not waited for again for a minute.
	// 0 = never wait. Default 500ms.
	PodWaitTimeout time.Duration `yaml:"pod_wait_timeout"`
	// PodDeleteGracePeriod is how long a deleted pod stays in the cache,
	// so records it sent just before it died (flushed late) are still
	// enriched. 0 = forget it at once. Processors sharing one cache keep
	// deleted pods for the longest of their periods. Default 2m, as in
	// the Collector.
	PodDeleteGracePeriod time.Duration `yaml:"pod_delete_grace_period"`
}

// K8sExtractConfig is the `extract` block.
type K8sExtractConfig struct {
	// Metadata lists resource attribute names to add (see the package
	// constants; default: namespace, pod name, uid, start time,
	// deployment, node, container image name and tag).
	Metadata []string `yaml:"metadata"`
	// Labels and Annotations copy pod or namespace labels/annotations.
	Labels      []K8sFieldExtract `yaml:"labels"`
	Annotations []K8sFieldExtract `yaml:"annotations"`
}

// K8sFieldExtract copies one label or annotation (Key), or every one
// whose key matches KeyRegex, into TagName. TagName may use $0, $1...
// from KeyRegex; default k8s.<from>.labels.<key> (or .annotations.).
type K8sFieldExtract struct {
	TagName  string `yaml:"tag_name"`
	Key      string `yaml:"key"`
	KeyRegex string `yaml:"key_regex"`
	// From is pod (default) or namespace.
	From string `yaml:"from"`
}

// K8sPodAssociation is one rule; every source must be present.
type K8sPodAssociation struct {
	Sources []K8sAssociationSource `yaml:"sources"`
}

// K8sAssociationSource is `from: resource_attribute` with a Name
// (k8s.pod.uid is a pod UID, k8s.pod.name goes with k8s.namespace.name,
// any other attribute holds a pod IP) or `from: connection`.
type K8sAssociationSource struct {
	From string `yaml:"from"`
	Name string `yaml:"name"`
}

// K8sFilterConfig narrows the pods the cache holds.
type K8sFilterConfig struct {
	// Node keeps only pods on this node; NodeFromEnvVar names an
	// environment variable holding it (read when the processor is built).
	Node           string `yaml:"node"`
	NodeFromEnvVar string `yaml:"node_from_env_var"`
	// Namespace keeps only pods (and replicasets, jobs) of one namespace.
	Namespace string `yaml:"namespace"`
	// Labels and Fields become label and field selectors.
	Labels []K8sFieldFilter `yaml:"labels"`
	Fields []K8sFieldFilter `yaml:"fields"`
}

// K8sFieldFilter is one selector term. Op is equals (default),
// not-equals, exists or does-not-exist (the last two: labels only).
type K8sFieldFilter struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
	Op    string `yaml:"op"`
}

// DefaultK8sAttributesConfig returns the defaults.
func DefaultK8sAttributesConfig() K8sAttributesConfig {
	return K8sAttributesConfig{
		AuthType:               AuthServiceAccount,
		WaitForMetadataTimeout: 10 * time.Second,
		PodWaitTimeout:         500 * time.Millisecond,
		PodDeleteGracePeriod:   2 * time.Minute,
	}
}

// Validate checks the configuration and names the offending key.
func (c K8sAttributesConfig) Validate() error {
	_, err := c.compile(func(string) string { return "node" })
	return err
}

// k8sRule is one compiled labels/annotations extraction.
type k8sRule struct {
	tag   string
	key   string
	re    *regexp.Regexp
	from  string // "pod" or "namespace"
	annot bool
}

func (r *k8sRule) keeps(key string) bool {
	if r.re != nil {
		return r.re.MatchString(key)
	}
	return key == r.key
}

// name returns the attribute name for a matching key.
func (r *k8sRule) name(key string) string {
	if r.re == nil {
		return r.tag
	}
	return string(r.re.ExpandString(nil, r.tag, key, r.re.FindStringSubmatchIndex(key)))
}

// k8sAssoc is one compiled pod_association rule.
type k8sAssoc struct {
	ip         string // resource attribute holding an IP
	uid        bool   // k8s.pod.uid
	name       bool   // k8s.pod.name + k8s.namespace.name
	connection bool
}

// k8sNeeds is what a processor needs the cache to keep and watch.
type k8sNeeds struct {
	rules       []*k8sRule
	containers  bool
	replicasets bool
	jobs        bool
	namespaces  bool
	deleteGrace time.Duration
}

type k8sCompiled struct {
	metadata map[string]bool
	assoc    []k8sAssoc
	filter   k8sFilter
	needs    k8sNeeds
}

func (c K8sAttributesConfig) compile(getenv func(string) string) (*k8sCompiled, error) {
	if err := validAuthType("auth_type", c.AuthType); err != nil {
		return nil, err
	}
	if c.WaitForMetadataTimeout < 0 {
		return nil, fmt.Errorf("wait_for_metadata_timeout: must not be negative, got %s", c.WaitForMetadataTimeout)
	}
	if c.PodWaitTimeout < 0 {
		return nil, fmt.Errorf("pod_wait_timeout: must not be negative, got %s", c.PodWaitTimeout)
	}
	if c.PodDeleteGracePeriod < 0 {
		return nil, fmt.Errorf("pod_delete_grace_period: must not be negative, got %s", c.PodDeleteGracePeriod)
	}
	out := &k8sCompiled{metadata: map[string]bool{}}
	out.needs.deleteGrace = c.PodDeleteGracePeriod
	md := c.Extract.Metadata
	if md == nil {
		md = k8sDefaultMetadata
	}
	for i, k := range md {
		ok := false
		for _, s := range k8sMetadataKeys {
			ok = ok || s == k
		}
		if !ok {
			return nil, fmt.Errorf("extract.metadata[%d]: unknown key %q", i, k)
		}
		out.metadata[k] = true
	}
	out.needs.containers = out.metadata[attrImageName] || out.metadata[attrImageTag]
	out.needs.replicasets = out.metadata[attrDeploymentName] || out.metadata[attrDeploymentUID]
	out.needs.jobs = out.metadata[attrCronJobName] || out.metadata[attrCronJobUID]
	for _, set := range []struct {
		key   string
		annot bool
		list  []K8sFieldExtract
	}{{"extract.labels", false, c.Extract.Labels}, {"extract.annotations", true, c.Extract.Annotations}} {
		for i, f := range set.list {
			key := fmt.Sprintf("%s[%d]", set.key, i)
			r, err := compileK8sRule(key, f, set.annot)
			if err != nil {
				return nil, err
			}
			if r.from == "namespace" {
				out.needs.namespaces = true
			}
			out.needs.rules = append(out.needs.rules, r)
		}
	}
	assoc := c.PodAssociation
	if len(assoc) == 0 {
		assoc = []K8sPodAssociation{
			{Sources: []K8sAssociationSource{{From: "resource_attribute", Name: attrPodIP}}},
			{Sources: []K8sAssociationSource{{From: "resource_attribute", Name: attrPodUID}}},
			{Sources: []K8sAssociationSource{{From: "connection"}}},
		}
	}
	for i, a := range assoc {
		r, err := compileK8sAssoc(fmt.Sprintf("pod_association[%d]", i), a)
		if err != nil {
			return nil, err
		}
		out.assoc = append(out.assoc, r)
	}
	f, err := compileK8sFilter(c.Filter, getenv)
	if err != nil {
		return nil, err
	}
	out.filter = f
	return out, nil
}

func compileK8sRule(key string, f K8sFieldExtract, annot bool) (*k8sRule, error) {
	r := &k8sRule{tag: f.TagName, key: f.Key, from: f.From, annot: annot}
	switch f.From {
	case "":
		r.from = "pod"
	case "pod", "namespace":
	default:
		return nil, fmt.Errorf("%s.from: want pod or namespace, got %q", key, f.From)
	}
	switch {
	case f.Key != "" && f.KeyRegex != "":
		return nil, fmt.Errorf("%s: set key or key_regex, not both", key)
	case f.Key == "" && f.KeyRegex == "":
		return nil, fmt.Errorf("%s: key or key_regex is required", key)
	case f.KeyRegex != "":
		re, err := regexp.Compile("^(?:" + f.KeyRegex + ")$")
		if err != nil {
			return nil, fmt.Errorf("%s.key_regex: %w", key, err)
		}
		r.re = re
	}
	if r.tag == "" {
		kind := "labels"
		if annot {
			kind = "annotations"
		}
		r.tag = "k8s." + r.from + "." + kind + "."
		if r.re != nil {
			r.tag += "$0"
		} else {
			r.tag += f.Key
		}
	}
	return r, nil
}

func compileK8sAssoc(key string, a K8sPodAssociation) (k8sAssoc, error) {
	var r k8sAssoc
	if len(a.Sources) == 0 {
		return r, fmt.Errorf("%s.sources: at least one source is required", key)
	}
	hasNS := false
	for i, s := range a.Sources {
		sk := fmt.Sprintf("%s.sources[%d]", key, i)
		switch s.From {
		case "connection":
			r.connection = true
		case "resource_attribute":
			switch s.Name {
			case "":
				return r, fmt.Errorf("%s.name: required for from: resource_attribute", sk)
			case attrPodUID:
				r.uid = true
			case attrPodName:
				r.name = true
			case attrNamespaceName:
				hasNS = true
			default:
				if r.ip != "" {
					return r, fmt.Errorf("%s: a rule takes one IP attribute, %q and %q given", sk, r.ip, s.Name)
				}
				r.ip = s.Name
			}
		default:
			return r, fmt.Errorf("%s.from: want resource_attribute or connection, got %q", sk, s.From)
		}
	}
	if r.name != hasNS {
		return r, fmt.Errorf("%s: k8s.pod.name and k8s.namespace.name go together", key)
	}
	return r, nil
}

// k8sFilter is the compiled filter; key identifies a pod set in the cache.
type k8sFilter struct {
	namespace     string
	labelSelector string
	fieldSelector string
}

func (f k8sFilter) key() string {
	return f.namespace + "\x00" + f.labelSelector + "\x00" + f.fieldSelector
}

func compileK8sFilter(c K8sFilterConfig, getenv func(string) string) (k8sFilter, error) {
	f := k8sFilter{namespace: c.Namespace}
	var fields, labels []string
	node := c.Node
	if c.NodeFromEnvVar != "" {
		if node != "" {
			return f, errors.New("filter: set node or node_from_env_var, not both")
		}
		node = getenv(c.NodeFromEnvVar)
		if node == "" {
			return f, fmt.Errorf("filter.node_from_env_var: environment variable %s is empty", c.NodeFromEnvVar)
		}
	}
	if node != "" {
		fields = append(fields, "spec.nodeName="+node)
	}
	for i, l := range c.Labels {
		if l.Key == "" {
			return f, fmt.Errorf("filter.labels[%d].key: required", i)
		}
		switch l.Op {
		case "", "equals":
			labels = append(labels, l.Key+"="+l.Value)
		case "not-equals":
			labels = append(labels, l.Key+"!="+l.Value)
		case "exists":
			labels = append(labels, l.Key)
		case "does-not-exist":
			labels = append(labels, "!"+l.Key)
		default:
			return f, fmt.Errorf("filter.labels[%d].op: want equals, not-equals, exists or does-not-exist, got %q", i, l.Op)
		}
	}
	for i, l := range c.Fields {
		if l.Key == "" {
			return f, fmt.Errorf("filter.fields[%d].key: required", i)
		}
		switch l.Op {
		case "", "equals":
			fields = append(fields, l.Key+"="+l.Value)
		case "not-equals":
			fields = append(fields, l.Key+"!="+l.Value)
		default:
			return f, fmt.Errorf("filter.fields[%d].op: want equals or not-equals, got %q", i, l.Op)
		}
	}
	f.labelSelector = strings.Join(labels, ",")
	f.fieldSelector = strings.Join(fields, ",")
	return f, nil
}

// K8sAttributes is the `k8sattributes` processor. Process is its
// actors.ProcessFunc. Its informers belong to the K8sCache it was built
// with, whose Run the caller owns.
type K8sAttributes struct {
	id      string
	cfg     K8sAttributesConfig
	c       *k8sCompiled
	set     *podSet // nil in passthrough
	peer    func(context.Context) string
	log     *slog.Logger
	metrics *k8sAttrMetrics

	syncWaited atomic.Bool // wait_for_metadata timed out once

	mu     sync.Mutex
	missed map[string]time.Time // identifiers waited for in vain
}

type k8sAttrMetrics struct {
	enriched   prometheus.Counter
	unenriched *prometheus.CounterVec
}

// NewK8sAttributes builds the processor. cache is the process's shared
// informer cache (nil only with passthrough); peer returns the peer IP of
// the connection a batch came in on ("" when unknown; nil = never known).
// It counts resources in obs_enrich_k8sattributes_enriched_total and
// obs_enrich_k8sattributes_unenriched_total{reason}. filter.node_from_env_var
// is read here.
func NewK8sAttributes(id string, cfg K8sAttributesConfig, cache *K8sCache, peer func(context.Context) string, log *slog.Logger, reg prometheus.Registerer) (*K8sAttributes, error) {
	return newK8sAttributes(id, cfg, cache, peer, os.Getenv, log, reg)
}

func newK8sAttributes(id string, cfg K8sAttributesConfig, cache *K8sCache, peer func(context.Context) string, getenv func(string) string, log *slog.Logger, reg prometheus.Registerer) (*K8sAttributes, error) {
	c, err := cfg.compile(getenv)
	if err != nil {
		return nil, fmt.Errorf("k8sattributes processor %s: %w", id, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if peer == nil {
		peer = func(context.Context) string { return "" }
	}
	k := &K8sAttributes{id: id, cfg: cfg, c: c, peer: peer, log: log.With("processor", id), missed: map[string]time.Time{}}
	if !cfg.Passthrough {
		if cache == nil {
			return nil, fmt.Errorf("k8sattributes processor %s: no kubernetes cache (needed unless passthrough)", id)
		}
		if k.set, err = cache.register(c.filter, c.needs); err != nil {
			return nil, fmt.Errorf("k8sattributes processor %s: %w", id, err)
		}
	}
	k.metrics = &k8sAttrMetrics{
		enriched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obs_enrich_k8sattributes_enriched_total", Help: "Resources a k8sattributes processor found the pod of.",
			ConstLabels: prometheus.Labels{"processor": id},
		}),
		unenriched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_enrich_k8sattributes_unenriched_total", Help: "Resources a k8sattributes processor passed without pod attributes, by reason.",
			ConstLabels: prometheus.Labels{"processor": id},
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{k.metrics.enriched, k.metrics.unenriched} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register k8sattributes metrics for %s: %w", id, err)
			}
		}
	}
	return k, nil
}

// Process implements actors.ProcessFunc.
func (k *K8sAttributes) Process(ctx context.Context, b actors.Batch) error {
	peer := normalizeIP(k.peer(ctx))
	if k.cfg.Passthrough {
		if peer != "" {
			forEachResource(b, func(r pcommon.Resource) {
				if _, ok := r.Attributes().Get(attrPodIP); !ok {
					r.Attributes().PutStr(attrPodIP, peer)
				}
			})
		}
		return nil
	}
	if k.cfg.WaitForMetadata && !k.set.hasSynced() && !k.syncWaited.Load() {
		// wait once: an unreachable API server must not hold every batch
		t := time.NewTimer(k.cfg.WaitForMetadataTimeout)
		select {
		case <-k.set.synced:
		case <-t.C:
			k.syncWaited.Store(true)
			k.log.Warn("kubernetes cache not synced in time; batches pass without waiting for it",
				"wait_for_metadata_timeout", k.cfg.WaitForMetadataTimeout)
		case <-ctx.Done():
		}
		t.Stop()
	}
	var deadline time.Time // one waiting budget per batch
	if k.cfg.PodWaitTimeout > 0 {
		deadline = time.Now().Add(k.cfg.PodWaitTimeout)
	}
	forEachResource(b, func(r pcommon.Resource) {
		attrs := r.Attributes()
		pod, byConn, reason := k.find(ctx, attrs, peer, deadline)
		if pod == nil {
			k.metrics.unenriched.WithLabelValues(reason).Inc()
			return
		}
		if byConn {
			putIfAbsent(attrs, attrPodIP, peer)
		}
		k.set.enrich(k.c, pod, attrs)
		k.metrics.enriched.Inc()
	})
	return nil
}

// find resolves a resource's pod by the association rules, waiting up to
// deadline for a pod not in the cache yet.
func (k *K8sAttributes) find(ctx context.Context, attrs pcommon.Map, peer string, deadline time.Time) (*cachedPod, bool, string) {
	var ids []podID
	for _, a := range k.c.assoc {
		if id, ok := a.identify(attrs, peer); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, false, "no_identifier"
	}
	lookup := func() (*cachedPod, bool) {
		for _, id := range ids {
			if p := k.set.lookup(id); p != nil {
				return p, id.conn
			}
		}
		return nil, false
	}
	if p, conn := lookup(); p != nil {
		return p, conn, ""
	}
	key := ids[0].String()
	now := time.Now()
	k.mu.Lock()
	at, seen := k.missed[key]
	k.mu.Unlock()
	if deadline.IsZero() || (seen && now.Sub(at) < time.Minute) || !now.Before(deadline) {
		return nil, false, "not_found"
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		ch := k.set.changed()
		if p, conn := lookup(); p != nil {
			return p, conn, ""
		}
		select {
		case <-ch:
		case <-t.C:
			k.mu.Lock()
			if len(k.missed) >= 4096 {
				clear(k.missed)
			}
			k.missed[key] = time.Now()
			k.mu.Unlock()
			return nil, false, "not_found"
		case <-ctx.Done():
			return nil, false, "not_found"
		}
	}
}

// podID is one way to find a pod.
type podID struct {
	kind  byte // 'i' IP, 'u' UID, 'n' namespace/name
	value string
	conn  bool // the IP is the connection's peer
}

func (p podID) String() string { return string(p.kind) + p.value }

// identify returns the rule's pod identifier, if the resource (and the
// connection) carry everything the rule needs.
func (a k8sAssoc) identify(attrs pcommon.Map, peer string) (podID, bool) {
	get := func(name string) string {
		if v, ok := attrs.Get(name); ok {
			return v.AsString()
		}
		return ""
	}
	var id podID
	switch {
	case a.uid:
		id = podID{kind: 'u', value: get(attrPodUID)}
	case a.name:
		ns, n := get(attrNamespaceName), get(attrPodName)
		if ns == "" || n == "" {
			return id, false
		}
		id = podID{kind: 'n', value: ns + "/" + n}
	case a.ip != "":
		id = podID{kind: 'i', value: normalizeIP(get(a.ip))}
	case a.connection:
		id = podID{kind: 'i', value: peer, conn: true}
	}
	if id.value == "" {
		return id, false
	}
	// a rule with several sources: the connection must agree with the IP
	if a.connection && id.kind == 'i' && !id.conn && id.value != peer {
		return id, false
	}
	return id, true
}

// normalizeIP strips a port and brackets; "" for anything not an IP.
func normalizeIP(s string) string {
	if s == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	ip := net.ParseIP(strings.Trim(s, "[]"))
	if ip == nil {
		return ""
	}
	return ip.String()
}

func putIfAbsent(m pcommon.Map, k, v string) {
	if v == "" {
		return
	}
	if _, ok := m.Get(k); !ok {
		m.PutStr(k, v)
	}
}
