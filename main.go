package main

import (
	_ "github.com/asynkron/protoactor-go/actor"
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/hashicorp/serf/serf"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/common/model"
	_ "github.com/prometheus/prometheus/scrape"
	_ "github.com/prometheus/prometheus/discovery"
	_ "go.opentelemetry.io/collector/pdata/plog"
	_ "go.opentelemetry.io/collector/pdata/plog/plogotlp"
	_ "google.golang.org/grpc"
	_ "k8s.io/client-go/kubernetes"
	_ "github.com/urfave/cli/v2"
	_ "gopkg.in/yaml.v3"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/stretchr/testify/require"
	_ "go.uber.org/goleak"
)

func main() {}
