package detect

import (
	"bytes"
	"cmp"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/models"
)

// TestIncidentSurvivesRestart: an incident opened before a restart is the
// one a related anomaly after it updates (same UUID, "updated" rather than
// "opened"), and it still resolves once quiet for ResolveAfter. A container
// is its own process tree; so is a process name for its series; a host
// process's tree is its pid lineage, restored from the process table's
// checkpoint.
func TestIncidentSurvivesRestart(t *testing.T) {
	// cron then fails to connect to 30 ports (a scan); the exec after it
	// closes the step.
	cronScan := func(t *testing.T, mem memory.Allocator) []collector.Batch {
		var rows []row
		for p := range 30 {
			rows = append(rows, row{"ts": at(70*time.Second + ms(p)), "host": "web-1", "event": "connect_failed",
				"pid": 1000, "comm": "cron", "daddr": "10.0.0.9", "dport": 1 + p})
		}
		return []collector.Batch{makeBatch(t, mem, collector.KindTCP, rows...),
			makeBatch(t, mem, collector.KindExec, execRow(at(72*time.Second), 1000, 1, "cron", "/usr/sbin/cron", ""))}
	}
	execs := func(rows ...row) func(*testing.T, memory.Allocator) []collector.Batch {
		return func(t *testing.T, mem memory.Allocator) []collector.Batch {
			return []collector.Batch{makeBatch(t, mem, collector.KindExec, rows...)}
		}
	}
	cases := []struct {
		name string
		opts func(*Options)
		// before opens an incident on entity; after, past the restart,
		// has a related anomaly; quiet, half an hour later, none.
		before, after func(*testing.T, memory.Allocator) []collector.Batch
		quiet         row
		entity        string
		afterEntity   string // of the anomaly after the restart; default entity
	}{
		{
			name: "container",
			before: func(t *testing.T, mem memory.Allocator) []collector.Batch {
				return append(learningBatches(t, mem), makeBatch(t, mem, collector.KindExec,
					execRow(at(7*time.Second), 201, 200, "sh", "/bin/sh", "c1"))) // nginx -> /bin/sh
			},
			after:  execs(execRow(at(20*time.Second), 300, 0, "evil", "/tmp/evil", "c1")), // a new binary
			quiet:  execRow(at(32*time.Minute), 400, 0, "nginx", "/usr/sbin/nginx", "c1"),
			entity: "container:c1",
		},
		{
			name: "process series",
			opts: func(o *Options) {
				o.Bank.Detector.Warmup = 20
				o.Learning = time.Hour
			},
			before: cronStorm,
			after:  cronScan,
			quiet:  execRow(at(32*time.Minute), 1000, 1, "cron", "/usr/sbin/cron", ""),
			entity: "comm:cron",
		},
		{
			name: "host process tree",
			before: func(t *testing.T, mem memory.Allocator) []collector.Batch {
				return append(learningBatchesIn(t, mem, ""), makeBatch(t, mem, collector.KindExec,
					execRow(at(7*time.Second), 501, 200, "sh", "/bin/sh", ""))) // nginx -> /bin/sh
			},
			// nginx's shell, still running after the restart, runs a new binary.
			after:       execs(execRow(at(20*time.Second), 502, 501, "id", "/usr/bin/id", "")),
			quiet:       execRow(at(32*time.Minute), 100, 1, "bash", "/bin/bash", ""),
			entity:      "comm:sh",
			afterEntity: "comm:id",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
			defer mem.AssertSize(t, 0)
			dir := t.TempDir()
			newDetector := func(out Output) *Detector {
				o := testOptions(out, dir)
				if c.opts != nil {
					c.opts(&o)
				}
				return New(o)
			}
			names := func(e IncidentEvent) bool { return slices.Contains(e.Entities, c.entity) }

			before := &recorder{}
			run(t, newDetector(before), c.before(t, mem)...)
			i := slices.IndexFunc(before.incidents, names)
			if i < 0 || before.incidents[i].Kind != models.IncidentOpened {
				t.Fatalf("before the restart: incidents %+v", before.incidents)
			}
			opened := before.incidents[i]
			if _, err := os.Stat(filepath.Join(dir, incidentsFile)); err != nil {
				t.Fatalf("incident checkpoint: %v", err)
			}

			after := &recorder{}
			run(t, newDetector(after), c.after(t, mem)...)
			afterEntity := cmp.Or(c.afterEntity, c.entity)
			var ids []string
			for _, a := range after.anomalies {
				if a.Entity.Kind+":"+a.Entity.Name == afterEntity {
					ids = append(ids, a.ID)
					if a.IncidentID != opened.ID {
						t.Errorf("after the restart: anomaly %s in incident %s, want %s", a.Detector, a.IncidentID, opened.ID)
					}
				}
			}
			var last *IncidentEvent
			for _, e := range after.incidents {
				if !names(e) {
					continue
				}
				if e.ID != opened.ID || e.Incident.ID != opened.Incident.ID || e.Kind != models.IncidentUpdated {
					t.Errorf("after the restart: %v incident %s (#%d), want updated %s (#%d)",
						e.Kind, e.ID, e.Incident.ID, opened.ID, opened.Incident.ID)
				}
				last = &e
			}
			if len(ids) == 0 || last == nil {
				t.Fatalf("after the restart: anomalies %+v, incidents %+v", after.anomalies, after.incidents)
			}
			if !last.Incident.Opened.Equal(opened.Incident.Opened) {
				t.Errorf("opened at %v, want %v", last.Incident.Opened, opened.Incident.Opened)
			}
			if want := append(slices.Clone(opened.AnomalyIDs), ids...); !slices.Equal(last.AnomalyIDs, want) {
				t.Errorf("anomaly ids %v, want %v", last.AnomalyIDs, want)
			}

			// A second restart, then half an hour of quiet: it resolves.
			later := &recorder{}
			run(t, newDetector(later), makeBatch(t, mem, collector.KindExec, c.quiet))
			i = slices.IndexFunc(later.incidents, func(e IncidentEvent) bool { return e.ID == opened.ID })
			if i < 0 || later.incidents[i].Kind != models.IncidentClosed {
				t.Fatalf("after quiet: incidents %+v, want %s resolved", later.incidents, opened.ID)
			}
		})
	}
}

// TestIncidentCheckpointFallback: a missing incident checkpoint beside the
// models' (an upgrade), or one that is corrupt or from another version,
// is logged and incidents start empty; the models still restore.
func TestIncidentCheckpointFallback(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	batches := append(learningBatches(t, mem), makeBatch(t, mem, collector.KindExec, execRow(at(7*time.Second), 201, 200, "sh", "/bin/sh", "c1")))
	run(t, New(testOptions(nil, dir)), batches...)
	good, err := os.ReadFile(filepath.Join(dir, incidentsFile))
	if err != nil {
		t.Fatal(err)
	}
	badUUID := slices.Clone(good)
	i := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`).FindIndex(badUUID)
	if i == nil {
		t.Fatal("no UUID in the incident checkpoint")
	}
	badUUID[i[0]+8] = '_'
	for _, c := range []struct {
		name string
		data []byte // nil: no file
		log  string
	}{
		{"missing", nil, "no incident checkpoint"},
		{"old version", append([]byte("VGI0"), good[4:]...), "incident checkpoint not restored"},
		{"truncated", good[:len(good)/2], "incident checkpoint not restored"},
		{"bad uuid", badUUID, "incident checkpoint not restored"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, incidentsFile)
			_ = os.Remove(path)
			if c.data != nil {
				if err := os.WriteFile(path, c.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var logs bytes.Buffer
			o := testOptions(nil, dir)
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			d := New(o)
			if !strings.Contains(logs.String(), c.log) || strings.Contains(logs.String(), "models start empty") {
				t.Errorf("log %q, want %q", logs.String(), c.log)
			}
			if len(d.incs) != 0 || len(d.byKey) != 0 || len(d.corr.Open()) != 0 {
				t.Errorf("incidents restored from a bad checkpoint: %d, %d keys", len(d.incs), len(d.byKey))
			}
			if d.bank.Len() == 0 {
				t.Error("the models were not restored")
			}
		})
	}
	// A fresh state directory starts empty silently.
	var logs bytes.Buffer
	o := testOptions(nil, t.TempDir())
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	New(o)
	if logs.Len() != 0 {
		t.Errorf("fresh start logged %q", logs.String())
	}
}

// FuzzIncidentCheckpoint: whatever the file holds, restoring it does not
// panic, and what is accepted is consistent with the correlator.
func FuzzIncidentCheckpoint(f *testing.F) {
	d := New(Options{ProcRoot: "-"})
	for i, e := range []string{"container:a@h", "comm:sh@h", "host:h"} {
		d.anomaly(Detection{Anomaly: models.Anomaly{Entity: e, Tree: "t" + e, Detector: "novelty/binary", Value: "x",
			Start: t0.Add(time.Duration(i) * time.Minute)}}, t0.Add(time.Duration(i)*time.Minute))
	}
	d.advance(t0.Add(40 * time.Minute)) // the first resolves
	good, _ := incidentCheckpoint{d}.MarshalBinary()
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		d := New(Options{ProcRoot: "-", Correlator: models.CorrelatorOptions{MaxIncidents: 2}})
		if err := (incidentCheckpoint{d}).UnmarshalBinary(data); err != nil {
			return
		}
		if len(d.incs) > 2 {
			t.Fatalf("%d incidents, max 2", len(d.incs))
		}
		for id, st := range d.incs {
			if !d.corr.Has(id) || !validUUID(st.id) || len(st.anomalyIDs) > maxAnomalyIDs {
				t.Fatalf("incident %d: %+v", id, st)
			}
		}
		for k, id := range d.byKey {
			if d.incs[id] == nil {
				t.Fatalf("key %q names incident %d, not held", k, id)
			}
		}
		d.anomaly(Detection{Anomaly: models.Anomaly{Entity: "comm:sh@h", Tree: "tcomm:sh@h", Detector: "novelty/binary"}}, t0.Add(time.Hour))
		d.advance(t0.Add(5 * time.Hour))
	})
}

// TestProcCheckpoint: process trees survive a restart, except for local
// pids that are gone or now run another program; a corrupt file changes
// nothing.
func TestProcCheckpoint(t *testing.T) {
	root := t.TempDir()
	proc := func(pid, comm string) { fakeProc(t, root, pid, "1", comm) }
	before := newProcTable(64, root, "h")
	web := before.execTree("h", hostKey("h"), 30, 1, "websrv", 0)
	before.execTree("h", hostKey("h"), 31, 1, "cron", 0)
	before.execTree("h", hostKey("h"), 32, 1, "gone", 0)
	before.execTree("h", scopeKey("h", "c1"), 33, 1, "nginx", 0)
	remote := before.execTree("r", hostKey("r"), 30, 1, "api", 0)
	good, err := procCheckpoint{before}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}

	// After the restart: 30 and 33 still run, 31 is another program, 32 is gone.
	proc("30", "websrv")
	proc("31", "python3")
	proc("33", "nginx")
	after := newProcTable(64, root, "h")
	if err := (procCheckpoint{after}).UnmarshalBinary(good); err != nil {
		t.Fatal(err)
	}
	if got := after.execTree("h", hostKey("h"), 40, 30, "sh", 0); got != web {
		t.Errorf("child of a process seen before the restart: tree %q, want %q", got, web)
	}
	if got := after.execTree("h", hostKey("h"), 41, 31, "sh", 0); got != rootTree("h", 41, "sh") {
		t.Errorf("child of a reused pid inherited the old tree: %q", got)
	}
	if _, ok := after.m[procKey{"h", 32}]; ok {
		t.Error("a gone process was restored")
	}
	if got := after.execTree("r", hostKey("r"), 41, 30, "sh", 0); got != remote {
		t.Errorf("remote child: tree %q, want %q (remote processes cannot be checked)", got, remote)
	}

	for name, data := range map[string][]byte{
		"magic":     append([]byte("VGP0"), good[4:]...),
		"truncated": good[:len(good)-2],
		"trailing":  append(slices.Clone(good), 0),
		"bad tree":  append([]byte(procsMagic), 1, 1, 'h', 5, 0, 0),
		"pid 0":     append([]byte(procsMagic), 1, 1, 'h', 0, 1, 'x', 6, 't', 'r', 'e', 'e', ':', 'x'),
	} {
		p := newProcTable(64, "", "")
		if err := (procCheckpoint{p}).UnmarshalBinary(data); !errors.Is(err, models.ErrCheckpoint) || len(p.m) != 0 {
			t.Errorf("%s: err %v, %d processes restored", name, err, len(p.m))
		}
	}
}

// FuzzProcCheckpoint: whatever the file holds, restoring it does not panic,
// stays within the table's bound, and what is accepted writes back the same.
func FuzzProcCheckpoint(f *testing.F) {
	p := newProcTable(64, "", "")
	p.execTree("h", hostKey("h"), 30, 1, "websrv", 0)
	p.execTree("h", hostKey("h"), 31, 30, "sh", 0)
	p.execTree("h", scopeKey("h", "c1"), 33, 1, "nginx", 0)
	good, _ := procCheckpoint{p}.MarshalBinary()
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newProcTable(2, "", "")
		if err := (procCheckpoint{p}).UnmarshalBinary(data); err != nil {
			if len(p.m) != 0 {
				t.Fatalf("refused, yet %d processes restored", len(p.m))
			}
			return
		}
		if len(p.m) > 2 {
			t.Fatalf("%d processes, max 2", len(p.m))
		}
		again, err := procCheckpoint{p}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := (procCheckpoint{newProcTable(2, "", "")}).UnmarshalBinary(again); err != nil {
			t.Fatalf("what was accepted does not read back: %v", err)
		}
	})
}
