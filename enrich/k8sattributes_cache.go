package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// K8sCache is the process's one informer cache for the k8sattributes
// processors: pods, and replicasets, jobs and namespaces when a processor
// extracts what needs them. Processors that use the same filter share one
// set of informers. Every object is stripped by an informer transform to
// the fields some processor extracts, so 10,000 pods cost a few MiB.
//
// Build it with NewK8sCache, build every processor with it, then Run it;
// Run owns the informers' goroutines.
type K8sCache struct {
	client kubernetes.Interface
	log    *slog.Logger

	mu      sync.Mutex
	sets    map[string]*podSet
	started bool
}

// NewK8sCache builds the cache. It reports obs_enrich_k8s_cache_objects{kind}.
func NewK8sCache(client kubernetes.Interface, log *slog.Logger, reg prometheus.Registerer) (*K8sCache, error) {
	if client == nil {
		return nil, errors.New("new kubernetes cache: client is nil")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &K8sCache{client: client, log: log, sets: map[string]*podSet{}}
	if reg != nil {
		for _, kind := range []string{"pod", "deleted_pod", "replicaset", "job", "namespace"} {
			g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "obs_enrich_k8s_cache_objects", Help: "Objects in the k8sattributes informer cache.",
				ConstLabels: prometheus.Labels{"kind": kind},
			}, func() float64 { return float64(c.count(kind)) })
			if err := reg.Register(g); err != nil {
				return nil, fmt.Errorf("register kubernetes cache metrics: %w", err)
			}
		}
	}
	return c, nil
}

// register adds a processor's needs; the pod set of its filter is shared.
func (c *K8sCache) register(f k8sFilter, n k8sNeeds) (*podSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return nil, errors.New("register with kubernetes cache: cache already running")
	}
	s, ok := c.sets[f.key()]
	if !ok {
		s = &podSet{filter: f, notify: make(chan struct{}), synced: make(chan struct{}), built: make(chan struct{}),
			index: newPodIndex()}
		c.sets[f.key()] = s
	}
	s.needs.rules = append(s.needs.rules, n.rules...)
	s.needs.containers = s.needs.containers || n.containers
	s.needs.replicasets = s.needs.replicasets || n.replicasets
	s.needs.jobs = s.needs.jobs || n.jobs
	s.needs.namespaces = s.needs.namespaces || n.namespaces
	s.needs.deleteGrace = max(s.needs.deleteGrace, n.deleteGrace)
	return s, nil
}

// Run starts the informers and returns once ctx is done and they all
// stopped. It returns an error only if it was run twice or an informer
// could not be set up.
func (c *K8sCache) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("run kubernetes cache: already running")
	}
	c.started = true
	sets := make([]*podSet, 0, len(c.sets))
	for _, s := range c.sets {
		sets = append(sets, s)
	}
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range sets {
		if err := s.build(c.client); err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("run kubernetes cache: %w", err)
		}
		close(s.built)
		for _, inf := range s.informers() {
			wg.Go(func() { inf.Run(ctx.Done()) })
		}
		wg.Go(func() { s.deleted.run(ctx) })
		wg.Go(func() {
			start := time.Now()
			if cache.WaitForCacheSync(ctx.Done(), s.syncedFuncs()...) {
				close(s.synced)
				c.log.Info("kubernetes cache synced", "namespace", s.filter.namespace,
					"labels", s.filter.labelSelector, "fields", s.filter.fieldSelector,
					"pods", len(s.pods.GetStore().ListKeys()), "took", time.Since(start))
			}
		})
	}
	wg.Wait()
	return nil
}

// Synced reports whether every informer has listed once: until then
// k8sattributes passes batches unenriched (or waits), so /readyz says so.
func (c *K8sCache) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sets {
		if !s.hasSynced() {
			return false
		}
	}
	return true
}

func (c *K8sCache) count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return 0
	}
	n := 0
	for _, s := range c.sets {
		if !s.isBuilt() {
			continue
		}
		if kind == "deleted_pod" {
			n += s.deleted.len()
			continue
		}
		var inf cache.SharedIndexInformer
		switch kind {
		case "pod":
			inf = s.pods
		case "replicaset":
			inf = s.rs
		case "job":
			inf = s.jobs
		case "namespace":
			inf = s.ns
		}
		if inf != nil {
			n += len(inf.GetStore().ListKeys())
		}
	}
	return n
}

// podSet is the informers for one filter.
type podSet struct {
	filter k8sFilter
	needs  k8sNeeds // fixed once the cache runs

	// set by build before built is closed, read only after
	pods, rs, jobs, ns cache.SharedIndexInformer
	deleted            *deletedPods
	podsHandled        cache.ResourceEventHandlerRegistration
	built              chan struct{}
	index              *podIndex

	mu     sync.Mutex
	notify chan struct{} // closed and replaced when a pod is added or updated
	synced chan struct{} // closed once every informer listed
}

// cachedPod is what the cache keeps of a pod: a few metadata, spec and
// status fields, the labels and annotations some processor extracts, and
// the controller reference.
type cachedPod struct {
	Namespace, Name string
	UID             types.UID
	ResourceVersion string
	Owner           cachedOwner // Kind "" when the pod has no controller
	NodeName        string
	IPs             []string
	StartTime       time.Time // zero when unknown
	Finished        bool      // phase Succeeded or Failed
	HostNetwork     bool
	Labels          []kv
	Annotations     []kv
	Containers      []cachedContainer // only when an image is extracted
}

type cachedOwner struct {
	Kind, Name string
	UID        types.UID
}

type cachedContainer struct{ Name, Image string }

type kv struct{ k, v string }

// GetObjectMeta lets client-go's key functions (meta.Accessor) read the
// namespace and name.
func (p *cachedPod) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion}
}

func (p *cachedPod) key() string { return p.Namespace + "/" + p.Name }

// podIndex finds pods by namespace/name, IP and UID. The pod informer's
// handler keeps it, and lookups read only it and the deleted pods, never
// the informer's store: the store drops a deleted pod a moment before the
// handler hears of it, and a lookup in that moment would find the pod in
// neither place. The handler moves a pod to the deleted pods before it
// leaves the index, so it is always in one of them. (Cheaper, too, than
// the informer's indexers, which hold a set per value.)
type podIndex struct {
	mu    sync.RWMutex
	byKey map[string]*cachedPod
	byIP  map[string][]*cachedPod
	byUID map[string]*cachedPod
}

func newPodIndex() *podIndex {
	return &podIndex{byKey: map[string]*cachedPod{}, byIP: map[string][]*cachedPod{}, byUID: map[string]*cachedPod{}}
}

// update replaces old (nil for a new pod) with p (nil for a deleted pod)
// in one step, so a lookup never sees a pod missing while it changes.
func (x *podIndex) update(old, p *cachedPod) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != nil {
		x.remove(old)
	}
	if p != nil {
		x.add(p)
	}
}

func (x *podIndex) add(p *cachedPod) {
	k := p.key()
	if prev := x.byKey[k]; prev != nil {
		x.remove(prev) // an add for a pod already here: client-go relists
	}
	x.byKey[k] = p
	if !p.HostNetwork { // host-network pods share the node's IP
		for _, ip := range p.IPs {
			x.byIP[ip] = append(x.byIP[ip], p)
		}
	}
	x.byUID[string(p.UID)] = p
}

// remove drops the pod with p's key, whichever version the index holds.
func (x *podIndex) remove(p *cachedPod) {
	k := p.key()
	cur := x.byKey[k]
	if cur == nil {
		return
	}
	delete(x.byKey, k)
	for _, ip := range cur.IPs {
		ps := slices.DeleteFunc(x.byIP[ip], func(o *cachedPod) bool { return o == cur })
		if len(ps) == 0 {
			delete(x.byIP, ip)
		} else {
			x.byIP[ip] = ps
		}
	}
	if x.byUID[string(cur.UID)] == cur {
		delete(x.byUID, string(cur.UID))
	}
}

// find returns the pod for id: of several with one IP (a finished pod and
// its successor) a live one, then the newest.
func (x *podIndex) find(id podID) *cachedPod {
	x.mu.RLock()
	defer x.mu.RUnlock()
	switch id.kind {
	case 'i':
		var best *cachedPod
		for _, p := range x.byIP[id.value] {
			if best == nil || betterPod(p, best) {
				best = p
			}
		}
		return best
	case 'u':
		return x.byUID[id.value]
	case 'n':
		return x.byKey[id.value]
	}
	return nil
}

func asCachedPod(obj any) *cachedPod {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, _ := obj.(*cachedPod)
	return p
}

func (s *podSet) build(client kubernetes.Interface) error {
	s.deleted = newDeletedPods(s.needs.deleteGrace)
	ns := s.filter.namespace // "" = all
	s.pods = coreinformers.NewFilteredPodInformer(client, ns, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.LabelSelector, o.FieldSelector = s.filter.labelSelector, s.filter.fieldSelector
	})
	if err := s.pods.SetTransform(s.transformPod); err != nil {
		return fmt.Errorf("set pod transform: %w", err)
	}
	var err error
	s.podsHandled, err = s.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if p := asCachedPod(o); p != nil {
				s.index.update(nil, p)
				s.changedNotify()
			}
		},
		UpdateFunc: func(o, n any) {
			if p := asCachedPod(n); p != nil {
				s.index.update(asCachedPod(o), p)
				s.changedNotify()
			}
		},
		DeleteFunc: func(o any) {
			if p := asCachedPod(o); p != nil {
				s.deleted.add(p, time.Now()) // first: see podIndex
				s.index.update(p, nil)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("add pod handler: %w", err)
	}
	if s.needs.replicasets {
		s.rs = appsinformers.NewFilteredReplicaSetInformer(client, ns, 0, cache.Indexers{}, nil)
		if err := s.rs.SetTransform(transformReplicaSet); err != nil {
			return fmt.Errorf("set replicaset transform: %w", err)
		}
	}
	if s.needs.jobs {
		s.jobs = batchinformers.NewFilteredJobInformer(client, ns, 0, cache.Indexers{}, nil)
		if err := s.jobs.SetTransform(transformJob); err != nil {
			return fmt.Errorf("set job transform: %w", err)
		}
	}
	if s.needs.namespaces {
		s.ns = coreinformers.NewFilteredNamespaceInformer(client, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
			if ns != "" {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ns).String()
			}
		})
		if err := s.ns.SetTransform(s.transformNamespace); err != nil {
			return fmt.Errorf("set namespace transform: %w", err)
		}
	}
	return nil
}

func (s *podSet) informers() []cache.SharedIndexInformer {
	var out []cache.SharedIndexInformer
	for _, i := range []cache.SharedIndexInformer{s.pods, s.rs, s.jobs, s.ns} {
		if i != nil {
			out = append(out, i)
		}
	}
	return out
}

func (s *podSet) syncedFuncs() []cache.InformerSynced {
	var out []cache.InformerSynced
	for _, i := range s.informers() {
		out = append(out, i.HasSynced)
	}
	// the index, not the store, answers lookups: synced once the handler
	// has seen every pod of the first list
	return append(out, s.podsHandled.HasSynced)
}

func (s *podSet) isBuilt() bool {
	select {
	case <-s.built:
		return true
	default:
		return false
	}
}

func (s *podSet) hasSynced() bool {
	select {
	case <-s.synced:
		return true
	default:
		return false
	}
}

func (s *podSet) changedNotify() {
	s.mu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

// changed returns a channel closed at the next pod add or update.
func (s *podSet) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

// keep returns the labels or annotations some rule of kind from extracts.
func (s *podSet) keep(m map[string]string, from string, annot bool) map[string]string {
	var out map[string]string
	for k, v := range m {
		for _, r := range s.needs.rules {
			if r.from == from && r.annot == annot && r.keeps(k) {
				if out == nil {
					out = map[string]string{}
				}
				out[k] = v
				break
			}
		}
	}
	return out
}

// keepKV is keep as a slice of pairs (a small map costs about 200 bytes).
func (s *podSet) keepKV(m map[string]string, from string, annot bool) []kv {
	var out []kv
	for k, v := range m {
		for _, r := range s.needs.rules {
			if r.from == from && r.annot == annot && r.keeps(k) {
				out = append(out, kv{k, v})
				break
			}
		}
	}
	return slices.Clip(out)
}

// controllerRef keeps only the controlling owner reference, if any.
func controllerRef(refs []metav1.OwnerReference) []metav1.OwnerReference {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			// Controller stays set: client-go may run a transform again on
			// an object it already transformed, which must change nothing
			return []metav1.OwnerReference{{Kind: r.Kind, Name: r.Name, UID: r.UID, Controller: r.Controller}}
		}
	}
	return nil
}

// transformPod keeps only what the processors extract.
func (s *podSet) transformPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &cachedPod{
		Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion,
		Labels:      s.keepKV(p.Labels, "pod", false),
		Annotations: s.keepKV(p.Annotations, "pod", true),
		NodeName:    p.Spec.NodeName,
		HostNetwork: p.Spec.HostNetwork,
		Finished:    p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
	}
	if refs := controllerRef(p.OwnerReferences); len(refs) == 1 {
		out.Owner = cachedOwner{Kind: refs[0].Kind, Name: refs[0].Name, UID: refs[0].UID}
	}
	if p.Status.StartTime != nil {
		out.StartTime = p.Status.StartTime.Time
	}
	if p.Status.PodIP != "" || len(p.Status.PodIPs) > 0 {
		out.IPs = make([]string, 0, len(p.Status.PodIPs)+1)
		if p.Status.PodIP != "" {
			out.IPs = append(out.IPs, p.Status.PodIP)
		}
		for _, ip := range p.Status.PodIPs {
			if ip.IP != p.Status.PodIP {
				out.IPs = append(out.IPs, ip.IP)
			}
		}
		out.IPs = slices.Clip(out.IPs)
	}
	if s.needs.containers {
		out.Containers = make([]cachedContainer, len(p.Spec.Containers))
		for i, c := range p.Spec.Containers {
			out.Containers[i] = cachedContainer{Name: c.Name, Image: c.Image}
		}
	}
	return out, nil
}

func transformReplicaSet(obj any) (any, error) {
	r, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return obj, nil
	}
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{
		Name: r.Name, Namespace: r.Namespace, UID: r.UID, ResourceVersion: r.ResourceVersion,
		OwnerReferences: controllerRef(r.OwnerReferences),
	}}, nil
}

func transformJob(obj any) (any, error) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return obj, nil
	}
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{
		Name: j.Name, Namespace: j.Namespace, UID: j.UID, ResourceVersion: j.ResourceVersion,
		OwnerReferences: controllerRef(j.OwnerReferences),
	}}, nil
}

func (s *podSet) transformNamespace(obj any) (any, error) {
	n, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion,
		Labels:      s.keep(n.Labels, "namespace", false),
		Annotations: s.keep(n.Annotations, "namespace", true),
	}}, nil
}

// lookup finds a pod in the cache: a pod deleted within the grace period
// only when no pod in the cache has the identifier.
func (s *podSet) lookup(id podID) *cachedPod {
	if !s.isBuilt() {
		return nil
	}
	if p := s.index.find(id); p != nil {
		return p
	}
	return s.deleted.find(id, time.Now())
}

func betterPod(a, b *cachedPod) bool {
	if a.Finished != b.Finished {
		return !a.Finished
	}
	return a.StartTime.After(b.StartTime)
}

// owner returns an object's controller from an informer, by namespace and
// name, checking the UID.
func ownerMeta(inf cache.SharedIndexInformer, ns string, ref metav1.OwnerReference) *metav1.ObjectMeta {
	if inf == nil {
		return nil
	}
	o, ok, _ := inf.GetStore().GetByKey(ns + "/" + ref.Name)
	if !ok {
		return nil
	}
	m, err := metaOf(o)
	if err != nil || m.UID != ref.UID {
		return nil
	}
	return m
}

func metaOf(o any) (*metav1.ObjectMeta, error) {
	switch v := o.(type) {
	case *appsv1.ReplicaSet:
		return &v.ObjectMeta, nil
	case *batchv1.Job:
		return &v.ObjectMeta, nil
	}
	return nil, fmt.Errorf("unexpected %T in cache", o)
}

// enrich adds the pod's attributes, never replacing one already set.
func (s *podSet) enrich(c *k8sCompiled, p *cachedPod, attrs pcommon.Map) {
	put := func(key, v string) {
		if c.metadata[key] {
			putIfAbsent(attrs, key, v)
		}
	}
	put(attrNamespaceName, p.Namespace)
	put(attrPodName, p.Name)
	put(attrPodUID, string(p.UID))
	put(attrNodeName, p.NodeName)
	if !p.StartTime.IsZero() {
		put(attrPodStartTime, p.StartTime.UTC().Format(time.RFC3339))
	}
	if o := p.Owner; o.Kind != "" {
		ref := metav1.OwnerReference{Kind: o.Kind, Name: o.Name, UID: o.UID}
		switch ref.Kind {
		case "ReplicaSet":
			put(attrReplicaSetName, ref.Name)
			put(attrReplicaSetUID, string(ref.UID))
			if rs := ownerMeta(s.rs, p.Namespace, ref); rs != nil {
				for _, o := range rs.OwnerReferences {
					if o.Kind == "Deployment" {
						put(attrDeploymentName, o.Name)
						put(attrDeploymentUID, string(o.UID))
					}
				}
			}
		case "DaemonSet":
			put(attrDaemonSetName, ref.Name)
			put(attrDaemonSetUID, string(ref.UID))
		case "StatefulSet":
			put(attrStatefulSetName, ref.Name)
			put(attrStatefulSetUID, string(ref.UID))
		case "Job":
			put(attrJobName, ref.Name)
			put(attrJobUID, string(ref.UID))
			if j := ownerMeta(s.jobs, p.Namespace, ref); j != nil {
				for _, o := range j.OwnerReferences {
					if o.Kind == "CronJob" {
						put(attrCronJobName, o.Name)
						put(attrCronJobUID, string(o.UID))
					}
				}
			}
		}
	}
	if c.metadata[attrImageName] || c.metadata[attrImageTag] {
		if ctr := pickContainer(p, attrs); ctr != nil {
			name, tag := splitImage(ctr.Image)
			put(attrImageName, name)
			put(attrImageTag, tag)
		}
	}
	for _, r := range c.needs.rules {
		if r.from == "pod" {
			pairs := p.Labels
			if r.annot {
				pairs = p.Annotations
			}
			for _, e := range pairs {
				if r.keeps(e.k) {
					putIfAbsent(attrs, r.name(e.k), e.v)
				}
			}
			continue
		}
		if s.ns == nil {
			continue
		}
		o, ok, _ := s.ns.GetStore().GetByKey(p.Namespace)
		n, isNS := o.(*corev1.Namespace)
		if !ok || !isNS {
			continue
		}
		m := n.Labels
		if r.annot {
			m = n.Annotations
		}
		for k, v := range m {
			if r.keeps(k) {
				putIfAbsent(attrs, r.name(k), v)
			}
		}
	}
}

// pickContainer is the container named by k8s.container.name, or the only one.
func pickContainer(p *cachedPod, attrs pcommon.Map) *cachedContainer {
	if v, ok := attrs.Get(attrContainerName); ok {
		for i := range p.Containers {
			if p.Containers[i].Name == v.AsString() {
				return &p.Containers[i]
			}
		}
		return nil
	}
	if len(p.Containers) == 1 {
		return &p.Containers[0]
	}
	return nil
}

// splitImage splits "registry:5000/repo/name:tag@sha256:..." into the
// name and the tag ("latest" when none is given).
func splitImage(image string) (name, tag string) {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndexByte(image, '/')
	if i := strings.LastIndexByte(image, ':'); i > slash {
		return image[:i], image[i+1:]
	}
	return image, "latest"
}
