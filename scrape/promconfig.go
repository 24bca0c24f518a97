package scrape

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"reflect"
	"unsafe"

	promconfig "github.com/prometheus/prometheus/config"
	promscrape "github.com/prometheus/prometheus/scrape"
	"gopkg.in/yaml.v3"
)

// loadPromConfig turns the receiver's `config:` subtree (already expanded:
// ${env:...} replaced, $$ turned into $) into Prometheus' configuration with
// config.Load, which fills every default. When Prometheus rejects it, the
// error names the scrape job and the line of the obs configuration.
func loadPromConfig(n *yaml.Node, extraMetrics bool, log *slog.Logger) (*promconfig.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	text, err := yaml.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("config (line %d): %w", n.Line, err)
	}
	cfg, err := promconfig.Load(string(text), log)
	if err != nil {
		return nil, locateConfigError(n, err, log)
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return nil, fmt.Errorf("config (line %d): %w", n.Line, err)
	}
	if extraMetrics {
		on := true
		for _, sc := range scfgs {
			sc.ExtraScrapeMetrics = &on
		}
	}
	return cfg, nil
}

// locateConfigError loads the global section, then each scrape config with
// it, to find the part Prometheus rejects; yaml errors from the
// re-marshalled text would otherwise carry lines of that text, not of the
// user's file.
func locateConfigError(n *yaml.Node, whole error, log *slog.Logger) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("config (line %d): %w", n.Line, whole)
	}
	var rest []*yaml.Node // every top-level key but scrape_configs
	var scrapeList *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "scrape_configs" {
			scrapeList = n.Content[i+1]
			continue
		}
		rest = append(rest, n.Content[i], n.Content[i+1])
	}
	base := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: rest}
	if err := tryLoad(base, log); err != nil {
		return fmt.Errorf("config (line %d): %w", n.Line, whole)
	}
	if scrapeList == nil || scrapeList.Kind != yaml.SequenceNode {
		line := n.Line
		if scrapeList != nil {
			line = scrapeList.Line
		}
		return fmt.Errorf("config.scrape_configs (line %d): %w", line, whole)
	}
	for i, item := range scrapeList.Content {
		one := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: append(append([]*yaml.Node{}, rest...),
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "scrape_configs"},
			&yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{item}})}
		if err := tryLoad(one, log); err != nil {
			return fmt.Errorf("config.scrape_configs[%d] (job %q, line %d): %w", i, jobName(item), item.Line, err)
		}
	}
	return fmt.Errorf("config.scrape_configs (line %d): %w", scrapeList.Line, whole)
}

func tryLoad(n *yaml.Node, log *slog.Logger) error {
	text, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	cfg, err := promconfig.Load(string(text), log)
	if err != nil {
		return err
	}
	_, err = cfg.GetScrapeConfigs()
	return err
}

func jobName(item *yaml.Node) string {
	if item.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		if item.Content[i].Value == "job_name" {
			return item.Content[i+1].Value
		}
	}
	return ""
}

// setOffsetSeedName makes every member scrape a target at the same phase.
//
// Prometheus (v0.316.0, scrape/manager.go setOffsetSeed) derives a target's
// phase from hash(target) ^ seed with seed = fnv64a(FQDN + external labels).
// External labels come from the same configuration on every member, but the
// FQDN differs per host, and the only way to replace it is the unexported
// Options.fqdn field that Prometheus' own tests set. This sets that field
// to the cluster-wide name by reflection; if a Prometheus upgrade renames
// the field, this fails loudly at construction instead of silently giving
// every member its own phase (TestOffsetSeedField guards it too).
func setOffsetSeedName(o *promscrape.Options, name string) error {
	f := reflect.ValueOf(o).Elem().FieldByName("fqdn")
	if !f.IsValid() || f.Kind() != reflect.String {
		return errors.New("set scrape offset seed: prometheus scrape.Options has no fqdn string field")
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetString(name)
	return nil
}

// offsetSeed is the seed Prometheus computes from name and the external
// labels, for tests and the /cluster page.
func offsetSeed(name string, cfg *promconfig.Config) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s%s", name, cfg.GlobalConfig.ExternalLabels.String())
	return h.Sum64()
}
