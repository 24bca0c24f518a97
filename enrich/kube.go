package enrich

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Kubernetes auth types, as in the Collector's k8sconfig.
const (
	AuthServiceAccount = "serviceAccount"
	AuthKubeConfig     = "kubeConfig"
	AuthNone           = "none"
)

// validAuthType checks an auth_type value ("" means serviceAccount).
func validAuthType(key, v string) error {
	switch v {
	case "", AuthServiceAccount, AuthKubeConfig, AuthNone:
		return nil
	}
	return fmt.Errorf("%s: unknown auth_type %q (want %s, %s or %s)", key, v, AuthServiceAccount, AuthKubeConfig, AuthNone)
}

// KubeConfig builds a client configuration for authType:
//   - "serviceAccount" (or ""): the pod's in-cluster service account;
//   - "kubeConfig": the file at kubeconfig, or else $KUBECONFIG, or else
//     ~/.kube/config (client-go's loading rules), current context;
//   - "none": the in-cluster API server address with no credentials.
func KubeConfig(authType, kubeconfig string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch authType {
	case "", AuthServiceAccount:
		cfg, err = rest.InClusterConfig()
	case AuthKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if kubeconfig != "" {
			rules.ExplicitPath = kubeconfig
		}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	case AuthNone:
		cfg, err = rest.InClusterConfig()
		if err == nil {
			cfg = rest.AnonymousClientConfig(cfg)
		}
	default:
		return nil, validAuthType("auth_type", authType)
	}
	if err != nil {
		return nil, fmt.Errorf("load kubernetes config (auth_type %s): %w", authType, err)
	}
	return cfg, nil
}

// KubeClient builds a clientset for authType (see KubeConfig).
func KubeClient(authType, kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := KubeConfig(authType, kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build kubernetes client: %w", err)
	}
	return c, nil
}
