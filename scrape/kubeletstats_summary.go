package scrape

import "time"

// The kubelet's /stats/summary document (k8s.io/kubelet/pkg/apis/stats/
// v1alpha1), the fields the kubeletstats receiver reads.
type kubeletSummary struct {
	Node kubeletNodeStats  `json:"node"`
	Pods []kubeletPodStats `json:"pods"`
}

type kubeletNodeStats struct {
	NodeName  string              `json:"nodeName"`
	StartTime time.Time           `json:"startTime"`
	CPU       *kubeletCPUStats    `json:"cpu,omitempty"`
	Memory    *kubeletMemoryStats `json:"memory,omitempty"`
	Network   *kubeletNetStats    `json:"network,omitempty"`
	Fs        *kubeletFsStats     `json:"fs,omitempty"`
}

type kubeletPodRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

type kubeletPodStats struct {
	PodRef           kubeletPodRef           `json:"podRef"`
	StartTime        time.Time               `json:"startTime"`
	Containers       []kubeletContainerStats `json:"containers"`
	CPU              *kubeletCPUStats        `json:"cpu,omitempty"`
	Memory           *kubeletMemoryStats     `json:"memory,omitempty"`
	Network          *kubeletNetStats        `json:"network,omitempty"`
	Volumes          []kubeletVolumeStats    `json:"volume,omitempty"`
	EphemeralStorage *kubeletFsStats         `json:"ephemeral-storage,omitempty"`
}

type kubeletContainerStats struct {
	Name      string              `json:"name"`
	StartTime time.Time           `json:"startTime"`
	CPU       *kubeletCPUStats    `json:"cpu,omitempty"`
	Memory    *kubeletMemoryStats `json:"memory,omitempty"`
	Rootfs    *kubeletFsStats     `json:"rootfs,omitempty"`
	Logs      *kubeletFsStats     `json:"logs,omitempty"`
}

type kubeletCPUStats struct {
	Time                 time.Time `json:"time"`
	UsageNanoCores       *uint64   `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64   `json:"usageCoreNanoSeconds,omitempty"`
}

type kubeletMemoryStats struct {
	Time            time.Time `json:"time"`
	AvailableBytes  *uint64   `json:"availableBytes,omitempty"`
	UsageBytes      *uint64   `json:"usageBytes,omitempty"`
	WorkingSetBytes *uint64   `json:"workingSetBytes,omitempty"`
	RSSBytes        *uint64   `json:"rssBytes,omitempty"`
	PageFaults      *uint64   `json:"pageFaults,omitempty"`
	MajorPageFaults *uint64   `json:"majorPageFaults,omitempty"`
}

type kubeletInterfaceStats struct {
	Name     string  `json:"name"`
	RxBytes  *uint64 `json:"rxBytes,omitempty"`
	RxErrors *uint64 `json:"rxErrors,omitempty"`
	TxBytes  *uint64 `json:"txBytes,omitempty"`
	TxErrors *uint64 `json:"txErrors,omitempty"`
}

type kubeletNetStats struct {
	Time time.Time `json:"time"`
	kubeletInterfaceStats
	Interfaces []kubeletInterfaceStats `json:"interfaces,omitempty"`
}

type kubeletFsStats struct {
	Time           time.Time `json:"time"`
	AvailableBytes *uint64   `json:"availableBytes,omitempty"`
	CapacityBytes  *uint64   `json:"capacityBytes,omitempty"`
	UsedBytes      *uint64   `json:"usedBytes,omitempty"`
	InodesFree     *uint64   `json:"inodesFree,omitempty"`
	Inodes         *uint64   `json:"inodes,omitempty"`
	InodesUsed     *uint64   `json:"inodesUsed,omitempty"`
}

type kubeletVolumeStats struct {
	kubeletFsStats
	Name string `json:"name"`
}
