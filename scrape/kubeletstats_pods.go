package scrape

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// The kubelet's /pods document (a core/v1 PodList), the fields
// extra_metadata_labels reads: container IDs from the pod status and
// volume sources from the pod spec.
type kubeletPodList struct {
	Items []kubeletPod `json:"items"`
}

type kubeletPod struct {
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Volumes []kubeletPodVolume `json:"volumes"`
	} `json:"spec"`
	Status struct {
		ContainerStatuses     []kubeletContainerStatus `json:"containerStatuses"`
		InitContainerStatuses []kubeletContainerStatus `json:"initContainerStatuses"`
	} `json:"status"`
}

type kubeletContainerStatus struct {
	Name        string `json:"name"`
	ContainerID string `json:"containerID"`
}

// kubeletPodVolume is a volume of the pod spec; exactly one source is set.
// Only the sources the Collector names a k8s.volume.type for are decoded.
type kubeletPodVolume struct {
	Name                  string          `json:"name"`
	HostPath              json.RawMessage `json:"hostPath"`
	ConfigMap             json.RawMessage `json:"configMap"`
	EmptyDir              json.RawMessage `json:"emptyDir"`
	Secret                json.RawMessage `json:"secret"`
	DownwardAPI           json.RawMessage `json:"downwardAPI"`
	Local                 json.RawMessage `json:"local"`
	PersistentVolumeClaim *struct {
		ClaimName string `json:"claimName"`
	} `json:"persistentVolumeClaim"`
	AWSElasticBlockStore *struct {
		VolumeID  string `json:"volumeID"`
		FSType    string `json:"fsType"`
		Partition int32  `json:"partition"`
	} `json:"awsElasticBlockStore"`
	GCEPersistentDisk *struct {
		PDName    string `json:"pdName"`
		FSType    string `json:"fsType"`
		Partition int32  `json:"partition"`
	} `json:"gcePersistentDisk"`
	Glusterfs *struct {
		EndpointsName string `json:"endpoints"`
		Path          string `json:"path"`
	} `json:"glusterfs"`
}

// kubeletPodMeta answers the extra_metadata_labels lookups of one poll.
type kubeletPodMeta struct {
	containerID bool
	volumeType  bool
	containers  map[string]string // pod uid + "/" + container name → container.id
	volumes     map[string]kubeletPodVolume
}

func newKubeletPodMeta(body []byte, labels []string) (*kubeletPodMeta, error) {
	var pl kubeletPodList
	if err := json.Unmarshal(body, &pl); err != nil {
		return nil, fmt.Errorf("decode pods: %w", err)
	}
	m := &kubeletPodMeta{containers: map[string]string{}, volumes: map[string]kubeletPodVolume{}}
	for _, l := range labels {
		m.containerID = m.containerID || l == "container.id"
		m.volumeType = m.volumeType || l == "k8s.volume.type"
	}
	for _, p := range pl.Items {
		for _, cs := range append(p.Status.ContainerStatuses, p.Status.InitContainerStatuses...) {
			m.containers[p.Metadata.UID+"/"+cs.Name] = stripContainerScheme(cs.ContainerID)
		}
		for _, v := range p.Spec.Volumes {
			m.volumes[p.Metadata.UID+"/"+v.Name] = v
		}
	}
	return m, nil
}

// containerScheme is the runtime prefix of a status containerID
// ("containerd://", "cri-o://", "docker://"); container.id is without it.
var containerScheme = regexp.MustCompile(`^[\w+.-]+://`)

func stripContainerScheme(id string) string { return containerScheme.ReplaceAllString(id, "") }

// containerAttrs is the container.id attribute, or an error when the
// kubelet does not know the container (yet): the Collector then drops the
// container's metrics for this poll, and so do we.
func (m *kubeletPodMeta) containerAttrs(podUID, name string) ([]string, error) {
	if m == nil || !m.containerID {
		return nil, nil
	}
	id, ok := m.containers[podUID+"/"+name]
	if !ok {
		return nil, fmt.Errorf("pod %s has no status for container %q", podUID, name)
	}
	if id == "" {
		return nil, fmt.Errorf("pod %s: container %q has no container ID yet", podUID, name)
	}
	return []string{"container.id", id}, nil
}

// volumeAttrs are k8s.volume.type and the source's own attributes, named
// as the Collector's kubeletstats receiver names them. Sources it has no
// type for (projected, csi, ...) get none.
func (m *kubeletPodMeta) volumeAttrs(podUID, name string) ([]string, error) {
	if m == nil || !m.volumeType {
		return nil, nil
	}
	v, ok := m.volumes[podUID+"/"+name]
	if !ok {
		return nil, fmt.Errorf("pod %s has no volume %q in its spec", podUID, name)
	}
	switch {
	case v.HostPath != nil:
		return []string{"k8s.volume.type", "hostPath"}, nil
	case v.ConfigMap != nil:
		return []string{"k8s.volume.type", "configMap"}, nil
	case v.EmptyDir != nil:
		return []string{"k8s.volume.type", "emptyDir"}, nil
	case v.Secret != nil:
		return []string{"k8s.volume.type", "secret"}, nil
	case v.DownwardAPI != nil:
		return []string{"k8s.volume.type", "downwardAPI"}, nil
	case v.Local != nil:
		return []string{"k8s.volume.type", "local"}, nil
	case v.PersistentVolumeClaim != nil:
		return []string{"k8s.volume.type", "persistentVolumeClaim",
			"k8s.persistentvolumeclaim.name", v.PersistentVolumeClaim.ClaimName}, nil
	case v.AWSElasticBlockStore != nil:
		a := v.AWSElasticBlockStore
		return []string{"k8s.volume.type", "awsElasticBlockStore", "aws.volume.id", a.VolumeID,
			"fs.type", a.FSType, "partition", fmt.Sprint(a.Partition)}, nil
	case v.GCEPersistentDisk != nil:
		g := v.GCEPersistentDisk
		return []string{"k8s.volume.type", "gcePersistentDisk", "gce.pd.name", g.PDName,
			"fs.type", g.FSType, "partition", fmt.Sprint(g.Partition)}, nil
	case v.Glusterfs != nil:
		return []string{"k8s.volume.type", "glusterfs", "glusterfs.endpoints.name", v.Glusterfs.EndpointsName,
			"glusterfs.path", v.Glusterfs.Path}, nil
	}
	return nil, nil
}
