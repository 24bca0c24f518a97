package k8s

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStart checks the harness end to end: the server answers with the
// admin client, a namespace gets its default ServiceAccount so pods are
// accepted, a pod's status can be written as a kubelet would, and a pod
// bound to a node is deleted at once.
func TestStart(t *testing.T) {
	c := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	v, err := c.Client.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, "v1.37.2", v.GitVersion)
	require.FileExists(t, c.Kubeconfig)
	require.FileExists(t, c.CAFile)
	require.Contains(t, c.Server, "https://127.0.0.1:")
	require.NotEmpty(t, c.Token)

	ns := c.Namespace(t, "harness", map[string]string{"team": "obs"})
	pod, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{
			NodeName:   "node-a",
			Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	start := time.Now().Truncate(time.Second)
	pod, err = c.SetPodRunning(ctx, ns, pod.Name, "127.0.0.2", start)
	require.NoError(t, err)
	require.Equal(t, corev1.PodRunning, pod.Status.Phase)
	require.Equal(t, "127.0.0.2", pod.Status.PodIP)
	require.True(t, pod.Status.StartTime.Time.Equal(start))

	require.NoError(t, c.DeletePod(ctx, ns, pod.Name))
	_, err = c.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	require.Error(t, err, "pod deleted with grace 0 must be gone at once")

	sa, _ := c.ServiceAccountClient(t, ns, "reader")
	_, err = sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "a service account with no role is refused: %v", err)

	require.NoError(t, c.Stop())
	require.NoError(t, c.Stop(), "second Stop is a no-op")
}
