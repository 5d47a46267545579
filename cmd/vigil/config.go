package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/schema"
	goyaml "go.yaml.in/yaml/v3"
)

// Config is everything a user can set. It is loaded in increasing order of
// precedence from built-in defaults, the YAML file named by --config, VIGIL_*
// environment variables, and command-line flags. The koanf tags are the YAML
// keys; docs/configuration.md lists them all.
type Config struct {
	DataDir  string `koanf:"data_dir"`
	Listen   string `koanf:"listen"`
	Token    string `koanf:"token"`
	TLSCert  string `koanf:"tls_cert"`
	TLSKey   string `koanf:"tls_key"`
	Host     string `koanf:"host"`
	LogLevel string `koanf:"log_level"`

	Probes []string `koanf:"probes"`

	ClickHouse ClickHouseConfig `koanf:"clickhouse"`
	LLM        LLMConfig        `koanf:"llm"`
	Models     ModelsConfig     `koanf:"models"`
	Spool      SpoolConfig      `koanf:"spool"`
	// Retention overrides how many days a table keeps its rows (0 keeps
	// them forever); tables not named keep their defaults (docs/schema.md).
	Retention map[string]int `koanf:"retention"`
}

// SpoolConfig bounds the on-disk write-ahead spool in front of ClickHouse.
type SpoolConfig struct {
	// MaxBytes is the most the spool may hold while ClickHouse is slow or
	// down; beyond it rows are dropped and counted per table.
	MaxBytes int64 `koanf:"max_bytes"`
}

// ModelsConfig tunes the detection stage.
type ModelsConfig struct {
	// Step is the resolution of every series the models see.
	Step time.Duration `koanf:"step"`
	// Learning is how long a new host or container's binaries, exec pairs
	// and destinations are learned silently before novelty alerts.
	Learning time.Duration `koanf:"learning"`
}

// ClickHouseConfig selects the store: an external server when DSN is set,
// otherwise the embedded engine on the given loopback ports.
type ClickHouseConfig struct {
	DSN      string `koanf:"dsn"`
	TCPPort  int    `koanf:"tcp_port"`
	HTTPPort int    `koanf:"http_port"`
	Lib      string `koanf:"lib"`
}

// LLMConfig points at any OpenAI-compatible endpoint. An empty BaseURL and
// APIKey means the offline summarizer and query templates are used.
type LLMConfig struct {
	BaseURL   string        `koanf:"base_url"`
	Model     string        `koanf:"model"`
	APIKey    string        `koanf:"api_key"`
	Timeout   time.Duration `koanf:"timeout"`
	MaxTokens int           `koanf:"max_tokens"`
}

// knownProbes are the names --probes accepts: the collector's registry is
// the one list of them.
var knownProbes = collector.ProbeNames()

func defaultConfig() Config {
	return Config{
		DataDir:  "./data",
		Listen:   "127.0.0.1:8080",
		LogLevel: "info",
		Probes:   collector.ProbeNames(),
		ClickHouse: ClickHouseConfig{
			TCPPort:  9000,
			HTTPPort: 8123,
		},
		Models: ModelsConfig{Step: 10 * time.Second, Learning: time.Hour},
		Spool:  SpoolConfig{MaxBytes: 1 << 30},
		LLM: LLMConfig{
			Model:     "gpt-4o-mini",
			Timeout:   60 * time.Second,
			MaxTokens: 1024,
		},
	}
}

// envKeys maps environment variables to config keys. It is explicit rather
// than derived (VIGIL_DATA_DIR would be ambiguous between data.dir and
// data_dir) and it is the list docs/configuration.md shows.
var envKeys = map[string]string{
	"VIGIL_CONFIG":          "", // read directly by loadConfig
	"VIGIL_DATA_DIR":        "data_dir",
	"VIGIL_LISTEN":          "listen",
	"VIGIL_TOKEN":           "token",
	"VIGIL_TLS_CERT":        "tls_cert",
	"VIGIL_TLS_KEY":         "tls_key",
	"VIGIL_HOST":            "host",
	"VIGIL_LOG_LEVEL":       "log_level",
	"VIGIL_PROBES":          "probes",
	"VIGIL_CLICKHOUSE":      "clickhouse.dsn",
	"VIGIL_CH_TCP_PORT":     "clickhouse.tcp_port",
	"VIGIL_CH_HTTP_PORT":    "clickhouse.http_port",
	"VIGIL_CHDB_LIB":        "clickhouse.lib",
	"VIGIL_LLM_BASE_URL":    "llm.base_url",
	"VIGIL_LLM_MODEL":       "llm.model",
	"OPENAI_API_KEY":        "llm.api_key",
	"VIGIL_LLM_API_KEY":     "llm.api_key",
	"VIGIL_LLM_TIMEOUT":     "llm.timeout",
	"VIGIL_LLM_MAX_TOKENS":  "llm.max_tokens",
	"VIGIL_MODEL_STEP":      "models.step",
	"VIGIL_MODEL_LEARNING":  "models.learning",
	"VIGIL_SPOOL_MAX_BYTES": "spool.max_bytes",
}

// flagKeys maps the global flags to config keys.
var flagKeys = map[string]string{
	"data-dir":        "data_dir",
	"listen":          "listen",
	"token":           "token",
	"tls-cert":        "tls_cert",
	"tls-key":         "tls_key",
	"host":            "host",
	"log-level":       "log_level",
	"probes":          "probes",
	"clickhouse":      "clickhouse.dsn",
	"ch-tcp-port":     "clickhouse.tcp_port",
	"ch-http-port":    "clickhouse.http_port",
	"ch-lib":          "clickhouse.lib",
	"llm-base-url":    "llm.base_url",
	"llm-model":       "llm.model",
	"llm-timeout":     "llm.timeout",
	"llm-max-tokens":  "llm.max_tokens",
	"model-step":      "models.step",
	"model-learning":  "models.learning",
	"spool-max-bytes": "spool.max_bytes",
}

// addConfigFlags declares the flags that map onto Config. Defaults are shown
// in --help but never override the file or the environment: only flags the
// user set are applied (see loadConfig).
func addConfigFlags(fs *pflag.FlagSet) {
	d := defaultConfig()
	fs.String("config", "", "YAML config file (env VIGIL_CONFIG)")
	fs.String("data-dir", d.DataDir, "where ClickHouse data, the spool, model checkpoints and the access token live")
	fs.String("listen", d.Listen, "dashboard and API address")
	fs.String("token", "", "dashboard/API access token (default: generated on first start, kept in the data dir)")
	fs.String("tls-cert", "", "TLS certificate file for the dashboard")
	fs.String("tls-key", "", "TLS key file for the dashboard")
	fs.String("host", "", "host name written on every row (default: the machine's host name)")
	fs.String("log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringSlice("probes", d.Probes, "probes to load: "+strings.Join(knownProbes, ","))
	fs.String("clickhouse", "", "external ClickHouse DSN, e.g. clickhouse://host:9000/vigil (default: run the embedded engine)")
	fs.Int("ch-tcp-port", d.ClickHouse.TCPPort, "embedded ClickHouse native protocol port (127.0.0.1)")
	fs.Int("ch-http-port", d.ClickHouse.HTTPPort, "embedded ClickHouse HTTP port (127.0.0.1)")
	fs.String("ch-lib", "", "path to libchdb.so (default: $HOME/.cache/vigil/chdb/libchdb.so; env VIGIL_CHDB_LIB)")
	fs.String("llm-base-url", "", "OpenAI-compatible endpoint (default: offline summarizer)")
	fs.String("llm-model", d.LLM.Model, "LLM model name")
	fs.Duration("llm-timeout", d.LLM.Timeout, "LLM request timeout")
	fs.Int("llm-max-tokens", d.LLM.MaxTokens, "LLM token budget per request")
	fs.Duration("model-step", d.Models.Step, "resolution of the series the models score")
	fs.Duration("model-learning", d.Models.Learning, "how long new values are learned silently before novelty alerts")
	fs.Int64("spool-max-bytes", d.Spool.MaxBytes, "most bytes the on-disk spool may hold while ClickHouse is slow or down")
}

// loadConfig merges defaults, file, environment and flags, rejecting unknown
// keys and invalid values with an error that names the key and its source.
func loadConfig(fs *pflag.FlagSet, environ []string) (Config, error) {
	cfg := defaultConfig()
	k := koanf.New(".")

	path, _ := fs.GetString("config")
	if path == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "VIGIL_CONFIG="); ok {
				path = v
			}
		}
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}

	var envErr error
	envProvider := env.Provider(".", env.Opt{
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			key, known := envKeys[name]
			if !known {
				if strings.HasPrefix(name, "VIGIL_") && !ignoredEnv(name) {
					envErr = errors.Join(envErr, fmt.Errorf("unknown environment variable %s (known: see docs/configuration.md)", name))
				}
				return "", nil
			}
			if key == "" || v == "" {
				return "", nil
			}
			if key == "probes" {
				return key, splitList(v)
			}
			return key, v
		},
	})
	if err := k.Load(envProvider, nil); err != nil {
		return cfg, fmt.Errorf("environment: %w", err)
	}
	if envErr != nil {
		return cfg, envErr
	}

	flagProvider := posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
		key, ok := flagKeys[f.Name]
		if !ok {
			return "", nil
		}
		return key, posflag.FlagVal(fs, f)
	})
	if err := k.Load(flagProvider, nil); err != nil {
		return cfg, fmt.Errorf("flags: %w", err)
	}

	err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
			),
			ErrorUnused:      true,
			WeaklyTypedInput: true,
			Result:           &cfg,
			TagName:          "koanf",
		},
	})
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, cfg.validate()
}

// ignoredEnv lists VIGIL_ variables used by the Makefile and tests rather
// than by the binary, so they are not reported as typos.
func ignoredEnv(name string) bool {
	return name == "VIGIL_ARTIFACTS" || name == "VIGIL_CHDB_DIR" || strings.HasPrefix(name, "VIGIL_TEST_")
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir: must not be empty")
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: want host:port, e.g. 127.0.0.1:8080", c.Listen)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("listen %q: port must be 0-65535", c.Listen)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert and tls_key go together: set both or neither")
	}
	if c.Token != "" && len(c.Token) < 16 {
		bad("token: must be at least 16 characters")
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if len(c.Probes) == 0 {
		bad("probes: name at least one of %s", strings.Join(knownProbes, ","))
	}
	for _, p := range c.Probes {
		if !slices.Contains(knownProbes, p) {
			bad("probes: unknown probe %q (known: %s)", p, strings.Join(knownProbes, ","))
		}
	}
	for name, port := range map[string]int{"clickhouse.tcp_port (--ch-tcp-port)": c.ClickHouse.TCPPort, "clickhouse.http_port (--ch-http-port)": c.ClickHouse.HTTPPort} {
		if port < 1 || port > 65535 {
			bad("%s: %d is not a port (1-65535)", name, port)
		}
	}
	if c.ClickHouse.TCPPort == c.ClickHouse.HTTPPort {
		bad("clickhouse.tcp_port and clickhouse.http_port must differ")
	}
	if c.ClickHouse.DSN != "" {
		u, err := url.Parse(c.ClickHouse.DSN)
		if err != nil || u.Scheme != "clickhouse" || u.Host == "" {
			bad("clickhouse %q: want clickhouse://host:port[/database][?options]", c.ClickHouse.DSN)
		}
	}
	if c.LLM.BaseURL != "" {
		u, err := url.Parse(c.LLM.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("llm.base_url %q: want http(s)://host[:port]/v1", c.LLM.BaseURL)
		}
	}
	if c.LLM.Timeout <= 0 {
		bad("llm.timeout: must be positive, e.g. 60s")
	}
	if c.Models.Step < 100*time.Millisecond || c.Models.Step > time.Hour {
		bad("models.step %v: want 100ms to 1h, e.g. 10s", c.Models.Step)
	}
	if c.Models.Learning < 0 {
		bad("models.learning %v: must not be negative", c.Models.Learning)
	}
	for table, days := range c.Retention {
		if _, ok := schema.DefaultTTLDays[table]; !ok {
			bad("retention.%s: no such table with a TTL (tables: %s)", table, strings.Join(slices.Sorted(maps.Keys(schema.DefaultTTLDays)), ", "))
		} else if days < 0 || days > 36500 {
			bad("retention.%s: %d days out of range (0 keeps rows forever, at most 36500)", table, days)
		}
	}
	if c.Spool.MaxBytes < 1<<20 {
		bad("spool.max_bytes %d: want at least 1048576 (1 MiB)", c.Spool.MaxBytes)
	}
	if c.LLM.MaxTokens < 16 || c.LLM.MaxTokens > 1<<20 {
		bad("llm.max_tokens: %d out of range (16-1048576)", c.LLM.MaxTokens)
	}
	return errors.Join(errs...)
}

// HostName is the host name written on every row.
func (c *Config) HostName() string {
	if c.Host != "" {
		return c.Host
	}
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// printConfig writes cfg as YAML in the config file's own keys, with secrets
// redacted, so `vigil config > vigil.yaml` gives a starting file.
func printConfig(w io.Writer, cfg Config) error {
	if cfg.Token != "" {
		cfg.Token = "<redacted>"
	}
	if cfg.LLM.APIKey != "" {
		cfg.LLM.APIKey = "<redacted>"
	}
	var m map[string]any
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName: "koanf",
		Result:  &m,
		DecodeHook: func(_, _ reflect.Type, v any) (any, error) {
			if d, ok := v.(time.Duration); ok {
				return d.String(), nil
			}
			return v, nil
		},
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	out, err := goyaml.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	_, err = w.Write(out)
	return err
}
