package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(file, []byte(`
data_dir: /from/file
listen: 127.0.0.1:7000
probes: [exec]
clickhouse:
  tcp_port: 9100
llm:
  timeout: 30s
retention:
  exec_events: 30
  anomalies: 0
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		env   []string
		check func(t *testing.T, c Config)
	}{
		{"defaults", nil, nil, func(t *testing.T, c Config) {
			if c.DataDir != "./data" || c.Listen != "127.0.0.1:8080" || c.ClickHouse.TCPPort != 9000 || c.ClickHouse.HTTPPort != 8123 {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{"file", []string{"--config", file}, nil, func(t *testing.T, c Config) {
			if c.DataDir != "/from/file" || c.ClickHouse.TCPPort != 9100 || c.LLM.Timeout != 30*time.Second {
				t.Errorf("file not applied: %+v", c)
			}
			if strings.Join(c.Probes, ",") != "exec" {
				t.Errorf("probes = %v", c.Probes)
			}
			if c.ClickHouse.HTTPPort != 8123 {
				t.Errorf("unset key lost its default: %d", c.ClickHouse.HTTPPort)
			}
			if c.Retention["exec_events"] != 30 || c.Retention["anomalies"] != 0 || len(c.Retention) != 2 {
				t.Errorf("retention = %v", c.Retention)
			}
		}},
		{"env over file", []string{"--config", file}, []string{"VIGIL_DATA_DIR=/from/env", "VIGIL_PROBES= exec , exec"}, func(t *testing.T, c Config) {
			if c.DataDir != "/from/env" || strings.Join(c.Probes, ",") != "exec,exec" {
				t.Errorf("env not applied: %+v", c)
			}
		}},
		{"flag over env", []string{"--config", file, "--data-dir", "/from/flag", "--ch-tcp-port", "9200"}, []string{"VIGIL_DATA_DIR=/from/env"}, func(t *testing.T, c Config) {
			if c.DataDir != "/from/flag" || c.ClickHouse.TCPPort != 9200 {
				t.Errorf("flag not applied: %+v", c)
			}
		}},
		{"config from env", nil, []string{"VIGIL_CONFIG=" + file}, func(t *testing.T, c Config) {
			if c.DataDir != "/from/file" {
				t.Errorf("VIGIL_CONFIG not read: %+v", c)
			}
		}},
		{"openai key", nil, []string{"OPENAI_API_KEY=sk-test"}, func(t *testing.T, c Config) {
			if c.LLM.APIKey != "sk-test" {
				t.Errorf("OPENAI_API_KEY not applied")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			addConfigFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(fs, c.env)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

func TestConfigRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		f := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".yaml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	cases := []struct {
		name string
		args func() []string
		env  []string
		want string
	}{
		{"unknown key", func() []string { return []string{"--config", write("lisen: x\n")} }, nil, "lisen"},
		{"unknown nested key", func() []string { return []string{"--config", write("llm:\n  modle: x\n")} }, nil, "modle"},
		{"bad yaml", func() []string { return []string{"--config", write("listen: [\n")} }, nil, "config file"},
		{"missing file", func() []string { return []string{"--config", filepath.Join(dir, "nope.yaml")} }, nil, "nope.yaml"},
		{"bad duration", func() []string { return nil }, []string{"VIGIL_LLM_TIMEOUT=soon"}, "timeout"},
		{"short token", func() []string { return []string{"--token", "abc"} }, nil, "at least 16"},
		{"tls half", func() []string { return []string{"--tls-cert", "c.pem"} }, nil, "tls_cert and tls_key"},
		{"same ports", func() []string { return []string{"--ch-tcp-port", "9000", "--ch-http-port", "9000"} }, nil, "must differ"},
		{"bad log level", func() []string { return []string{"--log-level", "loud"} }, nil, "log_level"},
		{"bad llm url", func() []string { return []string{"--llm-base-url", "ftp://x"} }, nil, "llm.base_url"},
		{"unknown vigil env", func() []string { return nil }, []string{"VIGIL_LISTN=1"}, "VIGIL_LISTN"},
		{"retention unknown table", func() []string { return []string{"--config", write("retention:\n  exec_event: 3\n")} }, nil, "retention.exec_event: no such table"},
		{"retention negative", func() []string { return []string{"--config", write("retention:\n  exec_events: -1\n")} }, nil, "out of range"},
		{"empty probes", func() []string { return []string{"--probes", ""} }, nil, "at least one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			addConfigFlags(fs)
			if err := fs.Parse(c.args()); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(fs, c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}
