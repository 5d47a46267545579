package engine

import (
	"encoding/xml"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestWriteConfig(t *testing.T) {
	for _, kind := range []string{kindLibrary, kindBinary} {
		t.Run(kind, func(t *testing.T) {
			opts := Options{DataDir: t.TempDir(), TCPPort: 19001, HTTPPort: 18124}.withDefaults()
			cf, err := writeConfig(opts, kind)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{cf.config, cf.users} {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var v struct{}
				if err := xml.Unmarshal(b, &v); err != nil {
					t.Errorf("%s is not XML: %v", f, err)
				}
			}
			users, _ := os.ReadFile(cf.users)
			for _, want := range []string{"<vigil_ro>", "<readonly>1</readonly>", "<max_execution_time>30</max_execution_time>",
				"<max_result_rows>100000</max_result_rows>", "<ip>127.0.0.1</ip>"} {
				if !strings.Contains(string(users), want) {
					t.Errorf("users.xml lacks %s", want)
				}
			}
		})
	}
}

func TestLibArgs(t *testing.T) {
	args := libArgs(Options{DataDir: "/d", TCPPort: 1, HTTPPort: 2}, configFiles{config: "/d/c.xml"})
	sep := slices.Index(args, "--")
	if sep < 0 {
		t.Fatalf("no -- in %q", args)
	}
	// Server settings are only accepted after "--".
	for _, want := range []string{"--listen_host=127.0.0.1", "--tcp_port=1", "--http_port=2"} {
		if i := slices.Index(args, want); i < sep {
			t.Errorf("%s at %d, want after -- at %d", want, i, sep)
		}
	}
}

func TestCheckVersionText(t *testing.T) {
	for _, tc := range []struct {
		out string
		ok  bool
	}{
		{"ClickHouse local version 26.7.2.1 (official build).", true},
		{"ClickHouse server version 24.8.4.13 (official build).", true},
		{"ClickHouse server version 24.3.1.1.", false},
		{"ClickHouse client version 18.16.1.", false},
		{"garbage", false},
	} {
		if err := checkVersionText("clickhouse", tc.out); (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok = %v", tc.out, err, tc.ok)
		}
	}
}
