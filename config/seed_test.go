package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// seedEnv is what the OpenTelemetryCollector resources' env blocks set.
var seedEnv = map[string]string{
	"K8S_POD_IP":               "10.0.1.5",
	"K8S_NODE_NAME":            "node-a",
	"K8S_NODE_IP":              "172.16.1.7",
	"OTEL_RESOURCE_ATTRIBUTES": "host.name=node-a,host.ip=172.16.1.7",
	"METRICS_SCRAPE_INTERVAL":  "1m",
}

func TestSeedConfigs(t *testing.T) {
	tests := []struct {
		file      string
		pipelines []string
		warnings  []string
		check     func(t *testing.T, f *File)
	}{
		{
			file:      "testdata/seed-agent.yaml",
			pipelines: []string{"logs", "metrics", "metrics/hostmetrics", "metrics/kubeletstats", "metrics/self"},
			check: func(t *testing.T, f *File) {
				var kubelet struct {
					CollectionInterval time.Duration `yaml:"collection_interval"`
					AuthType           string        `yaml:"auth_type"`
					Endpoint           string        `yaml:"endpoint"`
					InsecureSkipVerify bool          `yaml:"insecure_skip_verify"`
					Metrics            map[string]struct {
						Enabled bool `yaml:"enabled"`
					} `yaml:"metrics"`
				}
				require.NoError(t, Decode(f.Receivers[ID{Type: "kubeletstats"}], &kubelet))
				require.Equal(t, time.Minute, kubelet.CollectionInterval)
				require.Equal(t, "https://172.16.1.7:10250", kubelet.Endpoint)
				require.True(t, kubelet.Metrics["k8s.pod.cpu.usage"].Enabled)

				// The Prometheus config keeps `$${1}` as Prometheus' `${1}`
				// and has the node name expanded into the keep regex.
				var prom struct {
					Config struct {
						ScrapeConfigs []struct {
							JobName        string `yaml:"job_name"`
							ScrapeInterval string `yaml:"scrape_interval"`
							RelabelConfigs []struct {
								Replacement string `yaml:"replacement"`
								Regex       string `yaml:"regex"`
							} `yaml:"relabel_configs"`
						} `yaml:"scrape_configs"`
					} `yaml:"config"`
				}
				require.NoError(t, f.Receivers[ID{Type: "prometheus"}].Node.Decode(&prom))
				cadvisor := prom.Config.ScrapeConfigs[1]
				require.Equal(t, "cadvisor", cadvisor.JobName)
				require.Equal(t, "1m", cadvisor.ScrapeInterval)
				require.Equal(t, "/api/v1/nodes/${1}/proxy/metrics/cadvisor", cadvisor.RelabelConfigs[1].Replacement)
				require.Equal(t, "node-a", cadvisor.RelabelConfigs[3].Regex)

				require.Nil(t, f.Processors[ID{Type: "batch"}].Node.Content, "batch: {} has no settings")
				metrics := f.Pipelines[PipelineID{Signal: "metrics"}]
				require.Equal(t, []ID{{Type: "routing", Name: "metrics_common"}, {Type: "prometheus"}}, metrics.Receivers)
			},
		},
		{
			file:      "testdata/seed-gateway.yaml",
			pipelines: []string{"logs", "logs/new_relic", "metrics", "metrics/new_relic", "metrics/self", "traces", "traces/new_relic"},
			warnings:  []string{"testdata/seed-gateway.yaml:274: exporters.otlphttp/new_relic: defined but not used in any pipeline"},
			check: func(t *testing.T, f *File) {
				require.Len(t, f.Connectors, 4)
				var otlp struct {
					Protocols struct {
						GRPC struct {
							Endpoint string `yaml:"endpoint"`
						} `yaml:"grpc"`
					} `yaml:"protocols"`
				}
				require.NoError(t, Decode(f.Receivers[ID{Type: "otlp"}], &otlp))
				require.Equal(t, "10.0.1.5:4317", otlp.Protocols.GRPC.Endpoint)
			},
		},
		{
			file:      "testdata/seed-clusteragent.yaml",
			pipelines: []string{"logs", "metrics", "metrics/prometheus"},
			check: func(t *testing.T, f *File) {
				require.Equal(t, yaml.MappingNode, f.Receivers[ID{Type: "k8s_events"}].Node.Kind)
				require.Equal(t, []ID{{Type: "k8s_events"}}, f.Pipelines[PipelineID{Signal: "logs"}].Receivers)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := Load(tt.file, Options{LookupEnv: envOf(seedEnv)})
			require.NoError(t, err)
			var got []string
			for _, pl := range sortedPipelines(f.Pipelines) {
				got = append(got, pl.ID.String())
			}
			require.Equal(t, tt.pipelines, got)
			require.Equal(t, tt.warnings, f.Warnings)
			require.Equal(t, "10.0.1.5:8888", f.Telemetry.MetricsAddr)
			tt.check(t, f)
		})
	}
}

// Without the environment the seed configs name every variable they miss.
func TestSeedConfigsWithoutEnv(t *testing.T) {
	_, err := Load("testdata/seed-clusteragent.yaml", Options{LookupEnv: noEnv})
	require.EqualError(t, err, `testdata/seed-clusteragent.yaml:8: receivers.prometheus.config.scrape_configs[0].scrape_interval: environment variable "METRICS_SCRAPE_INTERVAL" is not set and has no default
testdata/seed-clusteragent.yaml:11: receivers.prometheus.config.scrape_configs[0].static_configs[0].targets[0]: environment variable "K8S_POD_IP" is not set and has no default
testdata/seed-clusteragent.yaml:30: processors.resource/append_pod_ip.attributes[0].value: environment variable "K8S_POD_IP" is not set and has no default
testdata/seed-clusteragent.yaml:77: service.telemetry.metrics.readers[0].pull.exporter.prometheus.host: environment variable "K8S_POD_IP" is not set and has no default`)
}
