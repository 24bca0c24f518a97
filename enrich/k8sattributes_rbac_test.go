package enrich

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// k8sAttributesRules is the least a gateway's ClusterRole must grant for
// k8sattributes (pods, namespaces, replicasets, jobs) and resourcedetection's
// k8snode detector (get nodes).
var k8sAttributesRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
}

func TestK8sAttributesLeastPrivilege(t *testing.T) {
	c := apiServer(t)
	ns := c.Namespace(t, "rbac", map[string]string{"env": "prod"})
	pods := workloads(t, c, ns, "10.44.0")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	role, err := c.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "obs-enrich-"}, Rules: k8sAttributesRules,
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "obs"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	client, _ := c.ServiceAccountClient(t, ns, "obs")

	kc, err := NewK8sCache(client, nil, nil)
	require.NoError(t, err)
	cfg := fullConfig() // every informer: pods, replicasets, jobs, namespaces, all namespaces
	cfg.WaitForMetadataTimeout = 20 * time.Second
	k, err := NewK8sAttributes("k8sattributes", cfg, kc, nil, nil, nil)
	require.NoError(t, err)
	runCache(t, kc)

	b := logsWith(map[string]string{"k8s.pod.ip": pods["Deployment"].Status.PodIP}, map[string]string{"k8s.pod.ip": pods["CronJob"].Status.PodIP})
	require.NoError(t, k.Process(ctx, b))
	require.True(t, k.set.hasSynced(), "every informer listed with the role's rights")
	require.Equal(t, "web", resAttrs(b, 0)["k8s.deployment.name"])
	require.Equal(t, "nightly", resAttrs(b, 1)["k8s.cronjob.name"])
	require.Equal(t, "prod", resAttrs(b, 1)["k8s.namespace.labels.env"])

	_, err = client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "secrets are outside the role: %v", err)
	_, err = client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "nodes may be read one by one, not listed: %v", err)
}
