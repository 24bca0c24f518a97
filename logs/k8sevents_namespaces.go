package logs

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// namespaceWatch follows the cluster's namespaces for k8s_events with
// shard_by: namespace and no namespaces listed. Every member runs one (a
// list, then a watch): each must know every namespace to tell which are
// its own. It keeps only names, and signals a change on a capacity-1
// channel; the receiver then pulls the full list.
type namespaceWatch struct {
	inf     cache.SharedIndexInformer
	changed chan struct{}
}

func newNamespaceWatch(client kubernetes.Interface) (*namespaceWatch, error) {
	w := &namespaceWatch{
		inf:     coreinformers.NewNamespaceInformer(client, 0, cache.Indexers{}),
		changed: make(chan struct{}, 1),
	}
	if err := w.inf.SetTransform(func(o any) (any, error) {
		n, ok := o.(*corev1.Namespace)
		if !ok {
			return o, nil
		}
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion}}, nil
	}); err != nil {
		return nil, fmt.Errorf("set namespace transform: %w", err)
	}
	// Adds and deletes change the set; updates (labels, a namespace
	// terminating) do not: its events are watched until it is gone.
	if _, err := w.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.signal() },
		DeleteFunc: func(any) { w.signal() },
	}); err != nil {
		return nil, fmt.Errorf("add namespace handler: %w", err)
	}
	return w, nil
}

func (w *namespaceWatch) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// run lists and watches namespaces until ctx ends.
func (w *namespaceWatch) run(ctx context.Context) {
	w.inf.Run(ctx.Done())
}

// has reports whether the namespace exists now.
func (w *namespaceWatch) has(ns string) bool {
	_, ok, err := w.inf.GetStore().GetByKey(ns)
	return ok && err == nil
}

// list returns the namespaces known now, sorted.
func (w *namespaceWatch) list() []string {
	keys := w.inf.GetStore().ListKeys() // a namespace's key is its name
	slices.Sort(keys)
	return keys
}
