package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-dev/vigil/pipeline/engine"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
	"github.com/vigil-dev/vigil/pipeline/schema"
)

// Paths relative to this package's directory (go test runs in deploy/).
const (
	composePath      = "../docker-compose.yml"
	configDocPath    = "../docs/configuration.md"
	datasourcePath   = "grafana/provisioning/datasources/clickhouse.yaml"
	dashProviderPath = "grafana/provisioning/dashboards/vigil.yaml"
	dashboardPath    = "grafana/dashboards/vigil.json"
	prometheusPath   = "prometheus/prometheus.yml"
	usersXMLPath     = "clickhouse/users.d/vigil.xml"
	dockerfilePath   = "Dockerfile"
	kubeDir          = "kubernetes"

	pluginType = "grafana-clickhouse-datasource"
)

// --- loading ---

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		Environment string `yaml:"environment"`
		File        string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Privileged  bool              `yaml:"privileged"`
	PID         string            `yaml:"pid"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Secrets     []string          `yaml:"secrets"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// composeEnv is the environment the compose file is interpolated with, as
// `docker compose` would with these variables exported.
var composeEnv = map[string]string{
	"VIGIL_TOKEN":                 "test-token-0123456789abcdef",
	"CLICKHOUSE_PASSWORD":         "test-ch-password",
	"CLICKHOUSE_GRAFANA_PASSWORD": "test-grafana-password",
}

// composeVar is compose's interpolation syntax: $$, ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?error}, ${VAR?error}.
var composeVar = regexp.MustCompile(`\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}`)

func interpolate(s string, env map[string]string) (string, error) {
	var errs []error
	out := composeVar.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := composeVar.FindStringSubmatch(m)
		v, set := env[sub[1]]
		empty := !set || (strings.HasPrefix(sub[2], ":") && v == "")
		switch strings.TrimPrefix(sub[2], ":") {
		case "-":
			if empty {
				return sub[3]
			}
		case "?":
			if empty {
				errs = append(errs, fmt.Errorf("required variable %s is missing: %s", sub[1], sub[3]))
			}
		}
		return v
	})
	return out, errors.Join(errs...)
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	text, err := interpolate(string(raw), composeEnv)
	if err != nil {
		t.Fatalf("docker-compose.yml with %v: %v", keys(composeEnv), err)
	}
	var c composeFile
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"clickhouse", "vigil", "grafana", "prometheus"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml: no service %q", name)
		}
	}
	return c
}

// mount is one "source:target[:mode]" entry of a service's volumes.
type mount struct{ source, target string }

func (s composeService) mounts() []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		out = append(out, mount{parts[0], parts[1]})
	}
	return out
}

func (s composeService) mountAt(target string) (mount, bool) {
	for _, m := range s.mounts() {
		if m.target == target {
			return m, true
		}
	}
	return mount{}, false
}

// flagValue returns the value after flag in args ("--flag v" or "--flag=v").
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// documented is what docs/configuration.md lists: YAML keys, flags and
// environment variables.
type documented struct {
	keys, flags, env map[string]bool
}

func loadDocs(t *testing.T) documented {
	t.Helper()
	b, err := os.ReadFile(configDocPath)
	if err != nil {
		t.Fatal(err)
	}
	d := documented{keys: map[string]bool{}, flags: map[string]bool{}, env: map[string]bool{}}
	code := regexp.MustCompile("`([^`]+)`")
	flag := regexp.MustCompile("`(--[a-z0-9-]+)")
	for line := range strings.SplitSeq(string(b), "\n") {
		// Command-specific flags (the "Command flags" table) count too.
		if strings.HasPrefix(line, "| `vigil ") {
			for _, m := range flag.FindAllStringSubmatch(line, -1) {
				d.flags[m[1]] = true
			}
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			d.keys[m[1]] = true
		}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			d.flags[m[1]] = true
		}
		for _, m := range code.FindAllStringSubmatch(cells[3], -1) {
			d.env[m[1]] = true
		}
	}
	if !d.flags["--listen"] || !d.env["VIGIL_TOKEN"] || !d.keys["clickhouse.dsn"] {
		t.Fatalf("%s: could not parse the settings table (flags %v)", configDocPath, d.flags)
	}
	// --config names the file itself (docs: "a YAML file named by --config").
	d.flags["--config"] = true
	d.env["VIGIL_CONFIG"] = true
	return d
}

// checkFlags reports every --flag in args that the subcommand does not have.
func checkFlags(t *testing.T, where string, docs documented, args []string) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: no command", where)
		return
	}
	sub := args[0]
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		if docs.flags[name] {
			continue
		}
		t.Errorf("%s: vigil %s %s: not a documented flag (docs/configuration.md)", where, sub, name)
	}
}

func checkEnv(t *testing.T, where string, docs documented, names []string) {
	t.Helper()
	for _, n := range names {
		if strings.HasPrefix(n, "VIGIL_") || n == "OPENAI_API_KEY" {
			if !docs.env[n] {
				t.Errorf("%s: environment variable %s is not in docs/configuration.md (vigil rejects unknown VIGIL_*)", where, n)
			}
		}
	}
}

// --- compose ---

func TestComposeVigilService(t *testing.T) {
	c := loadCompose(t)
	docs := loadDocs(t)
	v := c.Services["vigil"]

	if v.Build.Dockerfile != "deploy/Dockerfile" || v.Build.Context != "." {
		t.Errorf("vigil build = %+v, want context . and deploy/Dockerfile", v.Build)
	}
	if !v.Privileged || v.PID != "host" {
		t.Errorf("vigil: privileged=%v pid=%q, want privileged and pid: host (the probes)", v.Privileged, v.PID)
	}
	for _, target := range []string{"/sys/kernel/tracing", "/sys/fs/cgroup", "/sys/kernel/btf"} {
		m, ok := v.mountAt(target)
		if !ok || m.source != target {
			t.Errorf("vigil: want the host's %s mounted at %s, have %+v", target, target, m)
		}
	}
	if len(v.Command) == 0 || v.Command[0] != "up" {
		t.Fatalf("vigil command = %v, want up …", v.Command)
	}
	checkFlags(t, "compose vigil", docs, v.Command)
	checkEnv(t, "compose vigil", docs, keys(v.Environment))

	listen, ok := flagValue(v.Command, "--listen")
	if !ok {
		listen = v.Environment["VIGIL_LISTEN"]
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host != "0.0.0.0" {
		t.Fatalf("vigil listen %q: want 0.0.0.0:PORT", listen)
	}
	if !publishes(v.Ports, port) {
		t.Errorf("vigil ports %v do not publish the listen port %s", v.Ports, port)
	}
	if tok := v.Environment["VIGIL_TOKEN"]; tok != composeEnv["VIGIL_TOKEN"] {
		t.Errorf("vigil: VIGIL_TOKEN = %q, want it from the environment's VIGIL_TOKEN", tok)
	}

	// The DSN points at the clickhouse service, native port, the database
	// and user the image's entrypoint creates.
	dsn, ok := flagValue(v.Command, "--clickhouse")
	if !ok {
		dsn = v.Environment["VIGIL_CLICKHOUSE"]
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "clickhouse" {
		t.Fatalf("vigil clickhouse DSN %q: want clickhouse://…", dsn)
	}
	ch := c.Services["clickhouse"]
	if u.Hostname() != "clickhouse" || u.Port() != "9000" {
		t.Errorf("vigil DSN host %s, want clickhouse:9000 (service clickhouse, native port)", u.Host)
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != ch.Environment["CLICKHOUSE_DB"] || db != schema.DefaultDatabase {
		t.Errorf("vigil DSN database %q, clickhouse CLICKHOUSE_DB %q, schema default %q: want all equal",
			db, ch.Environment["CLICKHOUSE_DB"], schema.DefaultDatabase)
	}
	if u.User.Username() != ch.Environment["CLICKHOUSE_USER"] {
		t.Errorf("vigil DSN user %q != clickhouse CLICKHOUSE_USER %q", u.User.Username(), ch.Environment["CLICKHOUSE_USER"])
	}
	if pw, _ := u.User.Password(); pw != ch.Environment["CLICKHOUSE_PASSWORD"] {
		t.Errorf("vigil DSN password %q != clickhouse CLICKHOUSE_PASSWORD %q", pw, ch.Environment["CLICKHOUSE_PASSWORD"])
	}
	if !dependsOn(v, "clickhouse") {
		t.Errorf("vigil does not depend on clickhouse")
	}
}

func TestComposeClickHouse(t *testing.T) {
	c := loadCompose(t)
	ch := c.Services["clickhouse"]
	m := regexp.MustCompile(`^clickhouse/clickhouse-server:(\d+)\.(\d+)\.\d+\.\d+$`).FindStringSubmatch(ch.Image)
	if m == nil {
		t.Fatalf("clickhouse image %q: want the official image with a full version tag", ch.Image)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < engine.MinServerVersion[0] || major == engine.MinServerVersion[0] && minor < engine.MinServerVersion[1] {
		t.Errorf("clickhouse image %s is older than vigil's minimum %d.%d", ch.Image, engine.MinServerVersion[0], engine.MinServerVersion[1])
	}
	if mt, ok := ch.mountAt("/etc/clickhouse-server/users.d/vigil.xml"); !ok || filepath.Clean(mt.source) != "deploy/"+usersXMLPath {
		t.Errorf("clickhouse: want ./deploy/%s mounted into users.d, have %+v", usersXMLPath, mt)
	}
	users := loadUsers(t)
	if !users[engine.ReadOnlyUser] {
		t.Errorf("%s: no user %s (vigil up connects as it for the query layer)", usersXMLPath, engine.ReadOnlyUser)
	}
	// from_env passwords must reach the container.
	for _, env := range usersFromEnv(t) {
		if env == "" {
			continue
		}
		if _, ok := ch.Environment[env]; !ok {
			t.Errorf("%s reads %s but the clickhouse service does not set it", usersXMLPath, env)
		}
	}
	for _, p := range ch.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("clickhouse port %q published beyond loopback (vigil_ro has no password)", p)
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM golang:1\.26\S* AS build$`),
		regexp.MustCompile(`CGO_ENABLED=1 go build .* ./cmd/vigil`),
		regexp.MustCompile(`(?m)^FROM debian:\S+-slim$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/vigil"\]$`),
	} {
		if !want.MatchString(s) {
			t.Errorf("%s: no match for %s", dockerfilePath, want)
		}
	}
	// The build and runtime images must be the same Debian release (glibc).
	rel := regexp.MustCompile(`(?m)^FROM golang:1\.26-(\w+)`).FindStringSubmatch(s)
	run := regexp.MustCompile(`(?m)^FROM debian:(\w+)-slim`).FindStringSubmatch(s)
	if rel == nil || run == nil || rel[1] != run[1] {
		t.Errorf("%s: build and runtime Debian releases differ (%v, %v)", dockerfilePath, rel, run)
	}
}

// --- grafana ---

type datasourceFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name           string            `yaml:"name"`
		Type           string            `yaml:"type"`
		UID            string            `yaml:"uid"`
		IsDefault      bool              `yaml:"isDefault"`
		Editable       bool              `yaml:"editable"`
		JSONData       map[string]any    `yaml:"jsonData"`
		SecureJSONData map[string]string `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

type providerFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int    `json:"id"`
	Title      string `json:"title"`
	Type       string `json:"type"`
	Datasource *dsRef `json:"datasource"`
	Targets    []struct {
		RefID      string `json:"refId"`
		Datasource *dsRef `json:"datasource"`
		EditorType string `json:"editorType"`
		QueryType  string `json:"queryType"`
		Format     *int   `json:"format"`
		RawSQL     string `json:"rawSql"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if len(d.Panels) == 0 {
		t.Fatalf("%s: no panels", dashboardPath)
	}
	return d
}

func TestGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	g := c.Services["grafana"]

	var ds datasourceFile
	readYAML(t, datasourcePath, &ds)
	if len(ds.Datasources) != 1 {
		t.Fatalf("%s: want one datasource, have %d", datasourcePath, len(ds.Datasources))
	}
	src := ds.Datasources[0]
	if src.Type != pluginType || src.UID == "" {
		t.Errorf("datasource type %q uid %q, want %s with a uid", src.Type, src.UID, pluginType)
	}
	if !strings.Contains(g.Environment["GF_INSTALL_PLUGINS"], pluginType) {
		t.Errorf("grafana GF_INSTALL_PLUGINS = %q, want %s", g.Environment["GF_INSTALL_PLUGINS"], pluginType)
	}
	ch := c.Services["clickhouse"]
	jd := src.JSONData
	if jd["host"] != "clickhouse" || fmt.Sprint(jd["port"]) != "9000" || jd["protocol"] != "native" {
		t.Errorf("datasource host/port/protocol = %v/%v/%v, want clickhouse/9000/native", jd["host"], jd["port"], jd["protocol"])
	}
	if jd["defaultDatabase"] != ch.Environment["CLICKHOUSE_DB"] {
		t.Errorf("datasource defaultDatabase %v != CLICKHOUSE_DB %q", jd["defaultDatabase"], ch.Environment["CLICKHOUSE_DB"])
	}
	user, _ := jd["username"].(string)
	if !loadUsers(t)[user] {
		t.Errorf("datasource username %q is not a user of %s", user, usersXMLPath)
	}
	// $VAR in provisioning is expanded from Grafana's environment; the
	// password must be the one ClickHouse gives the datasource's user.
	pw, ok := strings.CutPrefix(src.SecureJSONData["password"], "$")
	pw = strings.Trim(pw, "{}")
	if !ok || g.Environment[pw] == "" {
		t.Errorf("datasource password %q: want $VAR set in the grafana service", src.SecureJSONData["password"])
	}
	if env := usersFromEnv(t)[user]; env == "" || ch.Environment[env] != g.Environment[pw] {
		t.Errorf("datasource user %s: grafana's $%s and clickhouse's password variable %q differ", user, pw, env)
	}

	var pf providerFile
	readYAML(t, dashProviderPath, &pf)
	if len(pf.Providers) != 1 || pf.Providers[0].Type != "file" {
		t.Fatalf("%s: want one file provider", dashProviderPath)
	}
	m, ok := g.mountAt(pf.Providers[0].Options.Path)
	if !ok {
		t.Fatalf("grafana: nothing mounted at the provider path %s", pf.Providers[0].Options.Path)
	}
	if filepath.Clean(m.source) != "deploy/"+filepath.Dir(dashboardPath) {
		t.Errorf("grafana mounts %s at the provider path, want ./deploy/%s", m.source, filepath.Dir(dashboardPath))
	}
	if m, ok := g.mountAt("/etc/grafana/provisioning"); !ok || filepath.Clean(m.source) != "deploy/grafana/provisioning" {
		t.Errorf("grafana: want ./deploy/grafana/provisioning at /etc/grafana/provisioning, have %+v", m)
	}

	d := loadDashboard(t)
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: duplicate id %d", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Datasource == nil || p.Datasource.UID != src.UID || p.Datasource.Type != pluginType {
			t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, src.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != src.UID {
				t.Errorf("panel %q query %s: datasource %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, src.UID)
			}
			if tg.EditorType != "sql" || strings.TrimSpace(tg.RawSQL) == "" {
				t.Errorf("panel %q query %s: want editorType sql with rawSql", p.Title, tg.RefID)
			}
			wantQT := map[string]string{"timeseries": "timeSeries", "table": "table"}[p.Type]
			if tg.QueryType != wantQT {
				t.Errorf("panel %q (%s): queryType %q, want %q", p.Title, p.Type, tg.QueryType, wantQT)
			}
		}
	}
	// The panels issue 8 asks for, found by the table each reads.
	for _, want := range []struct{ what, re string }{
		{"event rates per probe kind", `(?s)exec_events.*tcp_events.*priv_events`},
		{"execs per host", `exec_events_1m`},
		{"top talkers", `(?s)bytes_sent.*tcp_events`},
		{"failed connects", `connect_failed`},
		{"retransmits", `retransmit`},
		{"sensitive file opens", `file_events`},
		{"privilege changes", `priv_events`},
		{"anomalies by severity", `(?s)anomalies.*severity`},
		{"open incidents", `(?s)incidents FINAL.*'open'`},
	} {
		re := regexp.MustCompile(want.re)
		found := false
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				found = found || re.MatchString(tg.RawSQL)
			}
		}
		if !found {
			t.Errorf("dashboard: no panel for %s (query matching %s)", want.what, want.re)
		}
	}
}

// --- prometheus ---

type prometheusFile struct {
	Global        map[string]any `yaml:"global"`
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

type scrapeConfig struct {
	JobName       string `yaml:"job_name"`
	MetricsPath   string `yaml:"metrics_path"`
	Scheme        string `yaml:"scheme"`
	Authorization struct {
		Type            string `yaml:"type"`
		Credentials     string `yaml:"credentials"`
		CredentialsFile string `yaml:"credentials_file"`
	} `yaml:"authorization"`
	StaticConfigs []struct {
		Targets []string `yaml:"targets"`
	} `yaml:"static_configs"`
}

func TestPrometheusScrapesVigil(t *testing.T) {
	c := loadCompose(t)
	var pf prometheusFile
	readYAML(t, prometheusPath, &pf)
	p := c.Services["prometheus"]
	if m, ok := p.mountAt("/etc/prometheus/prometheus.yml"); !ok || filepath.Clean(m.source) != "deploy/"+prometheusPath {
		t.Errorf("prometheus: want ./deploy/%s at /etc/prometheus/prometheus.yml, have %+v", prometheusPath, m)
	}
	v := c.Services["vigil"]
	listen, _ := flagValue(v.Command, "--listen")
	_, port, _ := net.SplitHostPort(listen)
	want := net.JoinHostPort("vigil", port)

	var job *scrapeConfig
	for i := range pf.ScrapeConfigs {
		if pf.ScrapeConfigs[i].JobName == "vigil" {
			job = &pf.ScrapeConfigs[i]
		}
	}
	if job == nil {
		t.Fatalf("%s: no job vigil", prometheusPath)
	}
	if len(job.StaticConfigs) != 1 || !slices.Equal(job.StaticConfigs[0].Targets, []string{want}) {
		t.Errorf("vigil job targets %+v, want [%s] (service vigil, its --listen port)", job.StaticConfigs, want)
	}
	if job.MetricsPath != "/metrics" || job.Authorization.Type != "Bearer" {
		t.Errorf("vigil job: metrics_path %q authorization %q, want /metrics with a Bearer token", job.MetricsPath, job.Authorization.Type)
	}
	// The token file is a compose secret filled from the variable vigil's
	// VIGIL_TOKEN comes from.
	secret, ok := strings.CutPrefix(job.Authorization.CredentialsFile, "/run/secrets/")
	if !ok || !slices.Contains(p.Secrets, secret) {
		t.Fatalf("credentials_file %q: want /run/secrets/<a secret of the prometheus service %v>", job.Authorization.CredentialsFile, p.Secrets)
	}
	src := c.Secrets[secret].Environment
	if src == "" || composeEnv[src] != v.Environment["VIGIL_TOKEN"] {
		t.Errorf("secret %s comes from $%s, which is not what vigil's VIGIL_TOKEN is set from", secret, src)
	}
	if !dependsOn(p, "vigil") {
		t.Errorf("prometheus does not depend on vigil")
	}
}

// --- kubernetes ---

// kobj is a Kubernetes object, decoded loosely; the checks below walk it.
type kobj struct {
	file string
	m    map[string]any
}

func (o kobj) kind() string { return str(o.m, "kind") }
func (o kobj) name() string { return str(o.m, "metadata", "name") }
func (o kobj) ns() string   { return str(o.m, "metadata", "namespace") }

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string { s, _ := get(v, path...).(string); return s }
func list(v any, path ...string) []any { l, _ := get(v, path...).([]any); return l }
func smap(v any, path ...string) map[string]string {
	out := map[string]string{}
	m, _ := get(v, path...).(map[string]any)
	for k, x := range m {
		out[k] = fmt.Sprint(x)
	}
	return out
}

func loadKube(t *testing.T) []kobj {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s", kubeDir)
	}
	var objs []kobj
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if m == nil {
				continue
			}
			objs = append(objs, kobj{file: f, m: m})
		}
	}
	return objs
}

func find(objs []kobj, kind, name string) (kobj, bool) {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o, true
		}
	}
	return kobj{}, false
}

func TestKubernetesManifests(t *testing.T) {
	objs := loadKube(t)
	docs := loadDocs(t)

	var kust struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Resources  []string `yaml:"resources"`
	}
	readYAML(t, filepath.Join(kubeDir, "kustomization.yaml"), &kust)
	files, _ := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(kust.Resources, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}

	nsName := ""
	if ns, ok := findKind(objs, "Namespace"); ok {
		nsName = ns.name()
	}
	for _, o := range objs {
		if o.kind() == "Namespace" {
			continue
		}
		if o.ns() != nsName {
			t.Errorf("%s %s (%s): namespace %q, want %q", o.kind(), o.name(), o.file, o.ns(), nsName)
		}
	}

	// The ConfigMap's vigil.yaml: keys exactly as docs/configuration.md.
	cm, ok := find(objs, "ConfigMap", "vigil-config")
	if !ok {
		t.Fatal("no ConfigMap vigil-config")
	}
	var vcfg map[string]any
	if err := yaml.Unmarshal([]byte(str(cm.m, "data", "vigil.yaml")), &vcfg); err != nil || vcfg == nil {
		t.Fatalf("ConfigMap vigil-config: vigil.yaml: %v", err)
	}
	for _, k := range flatKeys("", vcfg) {
		if !docs.keys[k] {
			t.Errorf("vigil.yaml key %q is not in docs/configuration.md", k)
		}
	}

	workloads := map[string]kobj{}
	for _, o := range objs {
		if o.kind() == "DaemonSet" || o.kind() == "Deployment" {
			workloads[o.kind()] = o
		}
	}
	ds, dep := workloads["DaemonSet"], workloads["Deployment"]
	if ds.m == nil || dep.m == nil {
		t.Fatal("want a collector DaemonSet and a pipeline Deployment")
	}
	for _, w := range []kobj{ds, dep} {
		where := w.kind() + " " + w.name()
		sel := smap(w.m, "spec", "selector", "matchLabels")
		labels := smap(w.m, "spec", "template", "metadata", "labels")
		if len(sel) == 0 || !subset(sel, labels) {
			t.Errorf("%s: selector %v does not match template labels %v", where, sel, labels)
		}
		spec := get(w.m, "spec", "template", "spec")
		vols := map[string]any{}
		for _, v := range list(spec, "volumes") {
			vols[str(v, "name")] = v
			if n := str(v, "configMap", "name"); n != "" {
				if _, ok := find(objs, "ConfigMap", n); !ok {
					t.Errorf("%s: volume %s: no ConfigMap %s", where, str(v, "name"), n)
				}
			}
			if n := str(v, "persistentVolumeClaim", "claimName"); n != "" {
				if _, ok := find(objs, "PersistentVolumeClaim", n); !ok {
					t.Errorf("%s: volume %s: no PersistentVolumeClaim %s", where, str(v, "name"), n)
				}
			}
		}
		for _, c := range list(spec, "containers") {
			for _, vm := range list(c, "volumeMounts") {
				if _, ok := vols[str(vm, "name")]; !ok {
					t.Errorf("%s: volumeMount %s has no volume", where, str(vm, "name"))
				}
			}
			var envNames []string
			for _, e := range list(c, "env") {
				envNames = append(envNames, str(e, "name"))
				ref := get(e, "valueFrom", "secretKeyRef")
				if ref == nil {
					continue
				}
				sec, ok := find(objs, "Secret", str(ref, "name"))
				if !ok {
					t.Errorf("%s: env %s: no Secret %s", where, str(e, "name"), str(ref, "name"))
					continue
				}
				key := str(ref, "key")
				if _, ok := get(sec.m, "stringData", key).(string); !ok && get(sec.m, "data", key) == nil {
					t.Errorf("%s: env %s: Secret %s has no key %s", where, str(e, "name"), sec.name(), key)
				}
			}
			checkEnv(t, where, docs, envNames)
			var args []string
			for _, a := range list(c, "args") {
				args = append(args, fmt.Sprint(a))
			}
			checkFlags(t, where, docs, args)
			if cfg, ok := flagValue(args, "--config"); ok {
				if !mountedFile(c, spec, cfg, "vigil-config", "vigil.yaml") {
					t.Errorf("%s: --config %s is not vigil.yaml of ConfigMap vigil-config", where, cfg)
				}
			}
		}
	}

	// The collector: hostPID, host paths, the capabilities it needs and no more.
	dspec := get(ds.m, "spec", "template", "spec")
	if get(dspec, "hostPID") != true {
		t.Errorf("collector: hostPID must be true (/proc of the node)")
	}
	hostPaths := map[string]bool{}
	for _, v := range list(dspec, "volumes") {
		if p := str(v, "hostPath", "path"); p != "" {
			hostPaths[p] = true
		}
	}
	for _, p := range []string{"/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup"} {
		if !hostPaths[p] {
			t.Errorf("collector: no hostPath volume %s", p)
		}
	}
	allowed := []string{"BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH"}
	col := list(dspec, "containers")[0]
	sc := get(col, "securityContext")
	if get(sc, "privileged") == true {
		t.Errorf("collector: privileged; want capabilities only")
	}
	if drop := list(sc, "capabilities", "drop"); len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("collector: capabilities.drop = %v, want [ALL]", drop)
	}
	for _, c := range list(sc, "capabilities", "add") {
		if !slices.Contains(allowed, fmt.Sprint(c)) {
			t.Errorf("collector: capability %v beyond what the probes need %v", c, allowed)
		}
	}
	var colArgs []string
	for _, a := range list(col, "args") {
		colArgs = append(colArgs, fmt.Sprint(a))
	}
	if len(colArgs) == 0 || colArgs[0] != "collect" {
		t.Errorf("collector args %v, want collect …", colArgs)
	}

	// The collector's --to reaches the pipeline through its Service.
	to, ok := flagValue(colArgs, "--to")
	u, err := url.Parse(to)
	if !ok || err != nil {
		t.Fatalf("collector --to %q", to)
	}
	svc, ok := find(objs, "Service", u.Hostname())
	if !ok {
		t.Fatalf("collector --to %s: no Service %s", to, u.Hostname())
	}
	depLabels := smap(dep.m, "spec", "template", "metadata", "labels")
	if sel := smap(svc.m, "spec", "selector"); len(sel) == 0 || !subset(sel, depLabels) {
		t.Errorf("Service %s selector %v does not select the pipeline pods %v", svc.name(), sel, depLabels)
	}
	pipe := list(dep.m, "spec", "template", "spec", "containers")[0]
	var pipeArgs []string
	for _, a := range list(pipe, "args") {
		pipeArgs = append(pipeArgs, fmt.Sprint(a))
	}
	if len(pipeArgs) == 0 || (pipeArgs[0] != "pipeline" && pipeArgs[0] != "up") {
		t.Errorf("pipeline args %v, want pipeline … or up …", pipeArgs)
	}
	listen, _ := flagValue(pipeArgs, "--listen")
	_, listenPort, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("pipeline --listen %q: %v", listen, err)
	}
	containerPorts := map[string]string{} // name -> number
	for _, p := range list(pipe, "ports") {
		containerPorts[str(p, "name")] = fmt.Sprint(get(p, "containerPort"))
	}
	var svcPort string
	for _, p := range list(svc.m, "spec", "ports") {
		if fmt.Sprint(get(p, "port")) != u.Port() {
			continue
		}
		svcPort = fmt.Sprint(get(p, "port"))
		target := fmt.Sprint(get(p, "targetPort"))
		if n, ok := containerPorts[target]; ok {
			target = n
		}
		if target != listenPort {
			t.Errorf("Service %s port %s goes to %s, but the pipeline listens on %s", svc.name(), svcPort, target, listenPort)
		}
	}
	if svcPort == "" {
		t.Errorf("collector --to %s: Service %s has no port %s", to, svc.name(), u.Port())
	}
}

func findKind(objs []kobj, kind string) (kobj, bool) {
	for _, o := range objs {
		if o.kind() == kind {
			return o, true
		}
	}
	return kobj{}, false
}

// mountedFile reports whether path is key of ConfigMap cm as mounted in
// container c.
func mountedFile(c, spec any, path, cm, key string) bool {
	for _, vm := range list(c, "volumeMounts") {
		if filepath.Join(str(vm, "mountPath"), key) != path {
			continue
		}
		for _, v := range list(spec, "volumes") {
			if str(v, "name") == str(vm, "name") && str(v, "configMap", "name") == cm {
				return true
			}
		}
	}
	return false
}

func flatKeys(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			out = append(out, flatKeys(prefix+k+".", sub)...)
			continue
		}
		out = append(out, prefix+k)
	}
	return out
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// --- ClickHouse users ---

// usersXML is the part of a users.d file the tests read.
type usersXML struct {
	Users struct {
		Entries []struct {
			XMLName  xml.Name
			Password struct {
				FromEnv string `xml:"from_env,attr"`
			} `xml:"password"`
			Profile string `xml:"profile"`
		} `xml:",any"`
	} `xml:"users"`
	Profiles struct {
		Entries []struct {
			XMLName  xml.Name
			Readonly int `xml:"readonly"`
		} `xml:",any"`
	} `xml:"profiles"`
}

func readUsersXML(t *testing.T) usersXML {
	t.Helper()
	b, err := os.ReadFile(usersXMLPath)
	if err != nil {
		t.Fatal(err)
	}
	var u usersXML
	if err := xml.Unmarshal(b, &u); err != nil {
		t.Fatalf("%s: %v", usersXMLPath, err)
	}
	return u
}

// loadUsers returns the users the file defines, checking each one's profile
// exists there and is read-only.
func loadUsers(t *testing.T) map[string]bool {
	t.Helper()
	u := readUsersXML(t)
	readonly := map[string]bool{}
	for _, p := range u.Profiles.Entries {
		readonly[p.XMLName.Local] = p.Readonly == 1
	}
	out := map[string]bool{}
	for _, e := range u.Users.Entries {
		if !readonly[e.Profile] {
			t.Errorf("%s: user %s: profile %q is not a readonly=1 profile of this file", usersXMLPath, e.XMLName.Local, e.Profile)
		}
		out[e.XMLName.Local] = true
	}
	return out
}

// usersFromEnv maps each user to the variable its password comes from ("" for
// none).
func usersFromEnv(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, e := range readUsersXML(t).Users.Entries {
		out[e.XMLName.Local] = e.Password.FromEnv
	}
	return out
}

// --- the dashboard's queries against the real schema ---

// grafanaMacro matches the plugin's macros: $__name or $__name(args).
var grafanaMacro = regexp.MustCompile(`\$__(\w+)(?:\(([^()]*)\))?`)

// expandMacros does what grafana-clickhouse-datasource's backend does
// (pkg/macros/macros.go, v4) for a time range and interval. Unknown macros
// are an error: the plugin would send them to ClickHouse unexpanded.
func expandMacros(sql string, from, to time.Time, interval time.Duration) (string, error) {
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	ms := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	secs := max(int(interval.Seconds()), 1)
	var errs []error
	out := grafanaMacro.ReplaceAllStringFunc(sql, func(m string) string {
		sub := grafanaMacro.FindStringSubmatch(m)
		name, arg := sub[1], strings.TrimSpace(sub[2])
		switch name {
		case "fromTime":
			return dt(from)
		case "toTime":
			return dt(to)
		case "fromTime_ms":
			return ms(from)
		case "toTime_ms":
			return ms(to)
		case "timeFilter":
			return fmt.Sprintf("%s >= %s AND %s <= %s", arg, dt(from), arg, dt(to))
		case "timeFilter_ms":
			return fmt.Sprintf("%s >= %s AND %s <= %s", arg, ms(from), arg, ms(to))
		case "dateFilter":
			d := func(t time.Time) string { return "toDate('" + t.UTC().Format("2006-01-02") + "')" }
			return fmt.Sprintf("%s >= %s AND %s <= %s", arg, d(from), arg, d(to))
		case "timeInterval":
			return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", arg, secs)
		case "interval_s":
			return strconv.Itoa(secs)
		}
		errs = append(errs, fmt.Errorf("unknown macro %s", m))
		return m
	})
	return out, errors.Join(errs...)
}

func TestInterpolate(t *testing.T) {
	env := map[string]string{"A": "a", "E": ""}
	for _, c := range []struct{ in, want string }{
		{"${A}", "a"}, {"${A:?x}", "a"}, {"${B:-d}", "d"}, {"${E:-d}", "d"}, {"${E-d}", ""}, {"$$A", "$A"},
	} {
		if got, err := interpolate(c.in, env); err != nil || got != c.want {
			t.Errorf("interpolate %q = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := interpolate("${B:?set B}", env); err == nil {
		t.Errorf("a missing required variable interpolated without error")
	}
}

func TestExpandMacros(t *testing.T) {
	from, to := time.Unix(1415792726, 0), time.Unix(1447328726, 0)
	for _, c := range []struct{ in, want string }{
		{"WHERE $__timeFilter(ts)", "WHERE ts >= toDateTime(1415792726) AND ts <= toDateTime(1447328726)"},
		{"$__timeFilter_ms(ts)", "ts >= fromUnixTimestamp64Milli(1415792726000) AND ts <= fromUnixTimestamp64Milli(1447328726000)"},
		{"ts > $__fromTime AND ts < $__toTime", "ts > toDateTime(1415792726) AND ts < toDateTime(1447328726)"},
		{"SELECT $__timeInterval(ts) AS time, count() / $__interval_s", "SELECT toStartOfInterval(toDateTime(ts), INTERVAL 20 second) AS time, count() / 20"},
	} {
		got, err := expandMacros(c.in, from, to, 20*time.Second)
		if err != nil || got != c.want {
			t.Errorf("expand %q = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := expandMacros("$__timeGroup(ts, '1m')", from, to, time.Second); err == nil {
		t.Errorf("an unknown macro expanded without error")
	}
}

// TestDashboardQueriesRun runs every panel's query, expanded as the plugin
// would, against the real engine with the schema vigil creates, as the
// read-only user (readonly=1 and its limits), over a little data.
func TestDashboardQueriesRun(t *testing.T) {
	d := loadDashboard(t)
	h := enginetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := h.Conn(t)
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// One row in the tables whose queries do more than filter, so functions
	// (arrayStringConcat on LowCardinality arrays, FINAL, rollups) execute.
	for _, q := range []string{
		`INSERT INTO vigil.exec_events (ts, host, pid, comm, filename, argv) VALUES (now64(9), 'web-1', 42, 'sh', '/bin/sh', ['sh','-c','true'])`,
		`INSERT INTO vigil.tcp_events (ts, host, event, pid, comm, daddr, dport, bytes_sent) VALUES (now64(9), 'web-1', 'close', 42, 'curl', '10.0.0.1', 443, 1000), (now64(9), 'web-1', 'connect_failed', 42, 'curl', '10.0.0.2', 22, 0)`,
		`INSERT INTO vigil.anomalies (id, ts, host, series, severity) VALUES (generateUUIDv4(), now64(9), 'web-1', 'exec_rate', 'high')`,
		`INSERT INTO vigil.incidents (id, opened, updated, state, severity, title, hosts, anomaly_ids) VALUES (generateUUIDv4(), now64(9), now64(9), 'open', 'high', 'test', ['web-1'], [generateUUIDv4()])`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	ro := h.ConnAs(t, engine.ReadOnlyUser)
	// No deadline on these queries: clickhouse-go turns a context deadline
	// into max_execution_time, which readonly=1 refuses (the Grafana user in
	// deploy/clickhouse/users.d has it changeable_in_readonly for that
	// reason); vigil_ro's own 30 s limit bounds them.
	qctx := context.Background()
	to := time.Now().Add(time.Minute)
	from := to.Add(-6 * time.Hour)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			sql, err := expandMacros(tg.RawSQL, from, to, 30*time.Second)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
				continue
			}
			rows, err := ro.Query(qctx, sql)
			if err != nil {
				t.Errorf("panel %q: %v\n%s", p.Title, err, sql)
				continue
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				t.Errorf("panel %q: %v\n%s", p.Title, err, sql)
			}
			rows.Close()
			t.Logf("panel %q: %d rows", p.Title, n)
		}
	}
}

// --- small helpers ---

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// publishes reports whether one of the compose port entries maps a host port
// to container port p.
func publishes(ports []string, p string) bool {
	for _, e := range ports {
		parts := strings.Split(e, ":")
		if parts[len(parts)-1] == p || parts[len(parts)-1] == p+"/tcp" {
			return true
		}
	}
	return false
}

// dependsOn reads depends_on in its list or map form.
func dependsOn(s composeService, name string) bool {
	switch s.DependsOn.Kind {
	case yaml.SequenceNode:
		for _, n := range s.DependsOn.Content {
			if n.Value == name {
				return true
			}
		}
	case yaml.MappingNode:
		for i := 0; i < len(s.DependsOn.Content); i += 2 {
			if s.DependsOn.Content[i].Value == name {
				return true
			}
		}
	}
	return false
}
