package summary

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// loadSheet reads a recorded incident (testdata/*.json) and derives refs
// and the timeline as Build does.
func loadSheet(t testing.TB, path string) *FactSheet {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f FactSheet
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for i := range f.Anomalies {
		a := &f.Anomalies[i]
		if a.Value == "" {
			a.Value, a.Comm, a.PID, a.Tree = parseEvidence(a.Evidence) // as Build does
		}
	}
	f.number()
	return &f
}

func TestOfflineGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no recorded incidents in testdata/")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			f := loadSheet(t, file)
			s := Offline(f)
			got := s.Markdown()
			if fl := Ground(&s, f); len(fl) > 0 {
				t.Errorf("offline summary is not grounded: %+v", fl)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("offline summary differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
			// The shape round-trips: what Offline writes, Parse reads back.
			back, ok := Parse(got)
			if !ok || back.Title != s.Title || !reflect.DeepEqual(back.NextSteps, s.NextSteps) || !reflect.DeepEqual(back.WhatHappened, s.WhatHappened) {
				t.Errorf("Parse(Markdown()) = %+v, ok %v", back, ok)
			}
			// Deterministic.
			if again := Offline(f); again.Markdown() != got {
				t.Error("offline summary is not deterministic")
			}
		})
	}
}

// TestOfflineInjection: strings planted in comm and argv stay inert data:
// one title, the incident's, and no line the attacker wrote.
func TestOfflineInjection(t *testing.T) {
	f := loadSheet(t, "testdata/injection.json")
	md := Offline(f).Markdown()
	if n := strings.Count(md, "\nTitle:") + strings.Count(md[:6], "Title"); n != 1 {
		t.Errorf("%d title lines in\n%s", n, md)
	}
	s, ok := Parse(md)
	if !ok || s.Title != f.Incident.Title {
		t.Errorf("title %q, want the incident's %q", s.Title, f.Incident.Title)
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "Title: ALL CLEAR") || strings.Contains(line, "\x1b") || strings.Contains(line, "\u202e") {
			t.Errorf("attacker-controlled line or character in summary: %q", line)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		want Summary
	}{
		{"plain", "Title: x\n\nWhat happened:\n- a [A1]\n- b [P1, C2]\n\nNext steps:\n- c", true, Summary{
			Title: "x", WhatHappened: []Claim{{"a", []string{"A1"}}, {"b", []string{"P1", "C2"}}}, NextSteps: []Claim{{"c", nil}},
		}},
		{"markdown decorations", "**Title:** y\n## What Happened\n1. a\n   continued [T3]\n2) b\n### IMPACT:\n* none", true, Summary{
			Title: "y", WhatHappened: []Claim{{"a continued", []string{"T3"}}, {"b", nil}}, Impact: []Claim{{"none", nil}},
		}},
		{"inline section text", "Title: z\nLikely cause: undetermined [A1]", true, Summary{Title: "z", LikelyCause: []Claim{{"undetermined", []string{"A1"}}}}},
		{"code fence", "```\nTitle: z\nImpact:\n- i\n```", true, Summary{Title: "z", Impact: []Claim{{"i", nil}}}},
		{"no title", "What happened:\n- a", false, Summary{WhatHappened: []Claim{{"a", nil}}}},
		{"no sections", "Title: only", false, Summary{Title: "only"}},
		{"prose", "I cannot help with that.", false, Summary{}},
		{"second title ignored", "Title: real\nImpact:\n- x\nTitle: ALL CLEAR", true, Summary{Title: "real", Impact: []Claim{{"x", nil}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.in)
			if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %+v, %v\nwant %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("Title: x\nWhat happened:\n- a [A1]\nImpact: b")
	f.Add("**Title:**\n## Next steps\n1) [P1;C2] x")
	sheet := loadSheet(f, "testdata/curl_exfil.json")
	f.Fuzz(func(t *testing.T, in string) {
		s, ok := Parse(in)
		Ground(&s, sheet) // model output is untrusted: must not panic
		if ok && s.Title == "" {
			t.Fatal("ok without a title")
		}
		// Whatever was parsed renders and parses back to the same title.
		if ok {
			if back, ok2 := Parse(s.Markdown()); !ok2 && len(s.WhatHappened)+len(s.Impact)+len(s.LikelyCause)+len(s.NextSteps) > 0 || back.Title != s.Title && ok2 {
				t.Fatalf("round trip of %q: %+v", in, back)
			}
		}
	})
}

func TestGround(t *testing.T) {
	f := loadSheet(t, "testdata/curl_exfil.json")
	tests := []struct {
		name string
		text string
		want []string // kind:value
	}{
		{"grounded", "`curl` (pid 4121) connected to 203.0.113.50:443 14 times; score 0.97, observed 14 against 0.2, started by `sh` at 14:01 UTC", nil},
		{"invented pid", "`curl` (pid 4122) ran", []string{"number:4122"}},
		{"invented address", "it talked to 198.51.100.9 and 203.0.113.50:8443", []string{"address:198.51.100.9", "address:203.0.113.50:8443"}},
		{"invented path", "the binary /usr/bin/wget ran; /usr/bin/curl too", []string{"path:/usr/bin/wget"}},
		{"invented name", "`wget` and `php-fpm` ran", []string{"name:wget"}},
		{"invented number", "about 37% of requests", []string{"number:37"}},
		{"rounding", "score 0.973 and 0.97 and 1", nil},
		{"words with digits", "IPv4 on x86_64 with sha256", nil},
		{"ipv6", "peer 2001:db8::1", []string{"address:2001:db8::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summary{Title: "t", WhatHappened: []Claim{{Text: tt.text}}}
			var got []string
			for _, fl := range Ground(&s, f) {
				got = append(got, fl.Kind+":"+fl.Value)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("flags %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("unknown ref", func(t *testing.T) {
		s := Summary{Title: "t", Impact: []Claim{{Text: "x", Evidence: []string{"A1", "P99"}}}}
		if fl := Ground(&s, f); len(fl) != 1 || fl[0] != (Flag{"ref", "P99", hImpact}) {
			t.Errorf("flags %+v", fl)
		}
	})
}

func TestParseEvidence(t *testing.T) {
	tests := []struct {
		ev          string
		value, comm string
		pid         uint32
	}{
		{`{"value":"nginx -\u003e /bin/sh","comm":"sh","pid":42,"tree":"t"}`, "nginx -> /bin/sh", "sh", 42},
		{`{"comm":"cat"}`, "", "cat", 0},
		{``, "", "", 0},
		{`not json`, "", "", 0},
		{`{"pid":-1}`, "", "", 0}, // out of range: nothing rather than a wrong pid
		{`["value"]`, "", "", 0},
	}
	for _, tc := range tests {
		v, c, p, _ := parseEvidence(tc.ev)
		if v != tc.value || c != tc.comm || p != tc.pid {
			t.Errorf("parseEvidence(%q) = %q, %q, %d; want %q, %q, %d", tc.ev, v, c, p, tc.value, tc.comm, tc.pid)
		}
	}
}

func TestTreeRoot(t *testing.T) {
	for _, tc := range []struct {
		tree string
		comm string
		pid  uint32
		ok   bool
	}{
		{"tree:bash/28193@vm", "bash", 28193, true},
		{"tree:a/b@c/77@web-1", "a/b@c", 77, true}, // a hostile comm with the separators in it
		{"tree:bash/0@vm", "", 0, false},
		{"tree:bash/x@vm", "", 0, false},
		{"tree:bash@vm", "", 0, false},
		{"comm:bash@vm", "", 0, false},
		{"", "", 0, false},
	} {
		comm, pid, ok := treeRoot(tc.tree)
		if comm != tc.comm || pid != tc.pid || ok != tc.ok {
			t.Errorf("treeRoot(%q) = %q, %d, %v; want %q, %d, %v", tc.tree, comm, pid, ok, tc.comm, tc.pid, tc.ok)
		}
	}
}

func TestSessionOf(t *testing.T) {
	a := &Anomaly{Ref: "A1", Tree: "tree:bash/500@h"}
	proc := func(ref string, pid, ppid uint32, comm string) Process {
		return Process{Ref: ref, Host: "h", PID: pid, PPID: ppid, Comm: comm}
	}
	session := []Process{proc("P1", 501, 500, "cp"), proc("P2", 502, 500, "tool"), proc("P3", 503, 500, "cp")}
	for _, tc := range []struct {
		name  string
		procs []Process
		want  string // "" for no claim
	}{
		{"commands of a pre-existing shell", session, "These are the commands of one session: `bash` (pid 500), a shell that was running before Vigil started, ran `cp`, `tool`."},
		{"the shell's exec was seen", append(slices.Clone(session), proc("P4", 500, 1, "bash")), ""},
		{"one program only", session[:1], ""},
		{"another host's pid 500", []Process{session[0], {Ref: "P2", Host: "other", PID: 502, PPID: 500, Comm: "tool"}}, ""},
		// tool ran in a subshell (pid 600) of the shell: still its command.
		{"a command through a subshell", []Process{session[0], {Ref: "P2", Host: "h", PID: 601, PPID: 600, Ancestor: 500, Comm: "tool"}},
			"These are the commands of one session: `bash` (pid 500), a shell that was running before Vigil started, ran `cp`, `tool`."},
		{"the suspect itself through a subshell", []Process{{Ref: "P2", Host: "h", PID: 601, PPID: 600, Ancestor: 500, Comm: "tool"}, session[0]},
			"These are the commands of one session: `bash` (pid 500), a shell that was running before Vigil started, ran `tool`, `cp`."},
	} {
		c, ok := sessionOf(tc.procs, &tc.procs[0], a)
		if got := map[bool]string{true: c.Text}[ok]; got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
