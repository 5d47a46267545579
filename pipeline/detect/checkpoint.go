package detect

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-dev/vigil/models"
	"github.com/vigil-dev/vigil/models/ckpt"
)

// Checkpoint files under Options.StateDir. The incidents file holds the
// correlator together with the ids we gave its incidents, in one file so
// that they cannot disagree: after a restart an anomaly related to an
// incident opened before it updates that incident (same UUID in
// vigil.incidents) and open incidents resolve on schedule.
const (
	bankFile      = "detect-bank.ckpt"
	noveltyFile   = "detect-novelty.ckpt"
	incidentsFile = "detect-incidents.ckpt"
	procsFile     = "detect-procs.ckpt"
)

// restore reads the checkpoints. Models that fail are returned; incidents
// that fail (or are missing beside the models' checkpoints, as after an
// upgrade from a version that did not write them) are logged here, since
// the models restored fine: incidents then start empty and related
// anomalies open new ones.
func (d *Detector) restore() error {
	var errs []error
	found := 0
	load := func(name string, into interface{ UnmarshalBinary([]byte) error }) error {
		b, err := os.ReadFile(filepath.Join(d.o.StateDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		found++
		if err == nil {
			err = into.UnmarshalBinary(b)
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", name, err)
		}
		return nil
	}
	keep := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	keep(load(bankFile, d.bank))
	keep(load(noveltyFile, d.nov))
	modelFiles := found
	switch err := load(incidentsFile, incidentCheckpoint{d}); {
	case errors.Is(err, fs.ErrNotExist) && modelFiles > 0:
		d.o.Logger.Warn("no incident checkpoint; incidents start empty", "file", incidentsFile)
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		d.o.Logger.Warn("incident checkpoint not restored; incidents start empty", "err", err)
	}
	// Without it a process that exec'd before the restart roots a new
	// tree, so its children's anomalies open a new incident; that is all.
	if err := load(procsFile, procCheckpoint{d.agg.pids}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.o.Logger.Warn("process table checkpoint not restored; process trees start empty", "err", err)
	}
	return errors.Join(errs...)
}

// checkpoint writes the models' state; failures are logged, not returned:
// losing a checkpoint costs a relearning period, not data.
func (d *Detector) checkpoint() {
	if d.o.StateDir == "" {
		return
	}
	save := func(name string, from interface{ MarshalBinary() ([]byte, error) }) error {
		b, err := from.MarshalBinary()
		if err != nil {
			return err
		}
		return writeAtomic(filepath.Join(d.o.StateDir, name), b)
	}
	if err := os.MkdirAll(d.o.StateDir, 0o750); err != nil {
		d.o.Logger.Warn("detector checkpoint not written", "err", err)
		return
	}
	for name, m := range map[string]interface{ MarshalBinary() ([]byte, error) }{
		bankFile: d.bank, noveltyFile: d.nov, incidentsFile: incidentCheckpoint{d}, procsFile: procCheckpoint{d.agg.pids},
	} {
		if err := save(name, m); err != nil {
			d.o.Logger.Warn("detector checkpoint not written", "file", name, "err", err)
		}
	}
}

// writeAtomic replaces path with data so a crash mid-write leaves the old
// checkpoint, never a torn one.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// incidentsMagic starts the incidents checkpoint; a change to the layout
// must bump it so that old checkpoints are refused, not misread.
//
// Layout after the magic (uvarints unless said otherwise; strings are a
// uvarint length then the bytes):
//
//	the correlator's checkpoint (length, bytes; see models.Correlator)
//	n, then n incidents in correlator id order: correlator id, UUID,
//	  resolved (zigzag varint of Unix nanoseconds, math.MinInt64 while open),
//	  anomaly UUIDs (n, strings)
//	n, then n keys in order: key, correlator id
//
// Nothing may follow.
const incidentsMagic = "VGI1"

// incidentCheckpoint reads and writes a Detector's incidents: the
// correlator's and ours (incs, byKey).
type incidentCheckpoint struct{ d *Detector }

func (c incidentCheckpoint) MarshalBinary() ([]byte, error) {
	corr, err := c.d.corr.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := append([]byte(incidentsMagic), binary.AppendUvarint(nil, uint64(len(corr)))...)
	out = append(out, corr...)
	ids := slices.Sorted(maps.Keys(c.d.incs))
	out = binary.AppendUvarint(out, uint64(len(ids)))
	for _, id := range ids {
		st := c.d.incs[id]
		out = binary.AppendUvarint(out, id)
		out = ckpt.AppendString(out, st.id)
		out = ckpt.AppendTime(out, st.resolved)
		out = binary.AppendUvarint(out, uint64(len(st.anomalyIDs)))
		for _, a := range st.anomalyIDs {
			out = ckpt.AppendString(out, a)
		}
	}
	keys := slices.Sorted(maps.Keys(c.d.byKey))
	out = binary.AppendUvarint(out, uint64(len(keys)))
	for _, k := range keys {
		out = ckpt.AppendString(out, k)
		out = binary.AppendUvarint(out, c.d.byKey[k])
	}
	return out, nil
}

// UnmarshalBinary replaces the detector's incidents with a checkpoint's,
// or refuses it (wrapping models.ErrCheckpoint) and leaves them as they
// were. Ids of incidents the restored correlator no longer holds (its
// MaxIncidents may be lower than the writer's) are dropped; anomaly ids
// beyond maxAnomalyIDs too.
func (c incidentCheckpoint) UnmarshalBinary(data []byte) error {
	if len(data) < len(incidentsMagic) || string(data[:len(incidentsMagic)]) != incidentsMagic {
		return fmt.Errorf("%w: not a %s incidents checkpoint", models.ErrCheckpoint, incidentsMagic)
	}
	r := ckpt.NewReader(data[len(incidentsMagic):])
	corr := models.NewCorrelator(c.d.o.Correlator)
	if b := r.Bytes(); r.Err() == nil {
		if err := corr.UnmarshalBinary(b); err != nil {
			return err
		}
	}
	incs := map[uint64]*incState{}
	n := r.Count()
	for j := uint64(0); j < n && r.Err() == nil; j++ {
		id, st := r.Uvarint(), &incState{id: r.Str()}
		st.resolved = r.Time()
		m := r.Count()
		for k := uint64(0); k < m && r.Err() == nil; k++ {
			if a := r.Str(); len(st.anomalyIDs) < maxAnomalyIDs {
				st.anomalyIDs = append(st.anomalyIDs, a)
			}
		}
		if r.Err() != nil {
			break
		}
		if !validUUID(st.id) || slices.ContainsFunc(st.anomalyIDs, func(a string) bool { return !validUUID(a) }) {
			return fmt.Errorf("%w: incident %d: malformed UUID", models.ErrCheckpoint, id)
		}
		if incs[id] != nil {
			return fmt.Errorf("%w: incident %d twice", models.ErrCheckpoint, id)
		}
		if corr.Has(id) {
			incs[id] = st
		}
	}
	byKey := map[string]uint64{}
	n = r.Count()
	for j := uint64(0); j < n && r.Err() == nil; j++ {
		k, id := r.Str(), r.Uvarint()
		if r.Err() != nil {
			break
		}
		if !strings.HasPrefix(k, "t\x00") && !strings.HasPrefix(k, "e\x00") {
			return fmt.Errorf("%w: key %q", models.ErrCheckpoint, k)
		}
		if incs[id] != nil {
			byKey[k] = id
		}
	}
	if r.Err() == nil && r.Len() > 0 {
		r.Fail("%d trailing bytes", r.Len())
	}
	if r.Err() != nil {
		return r.Err()
	}
	c.d.corr, c.d.incs, c.d.byKey = corr, incs, byKey
	return nil
}

// validUUID reports whether s is a UUID as newUUID writes it (lower-case
// hex, dashed), so a corrupt checkpoint cannot put junk in vigil.incidents.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		default:
			return false
		}
	}
	return true
}

// procsMagic starts the process table checkpoint; a change to the layout
// must bump it.
//
// Layout after the magic: n, then n processes in (host, pid) order, each
// host (string), pid (uvarint), comm (string), tree (string). Only
// processes with a tree are written: the rest are found again in /proc.
// Nothing may follow.
const procsMagic = "VGP1"

// procCheckpoint is the process table's trees across a restart, so that a
// shell a web server spawns after it still joins the web server's tree.
type procCheckpoint struct{ p *procTable }

// MarshalBinary implements encoding.BinaryMarshaler.
func (c procCheckpoint) MarshalBinary() ([]byte, error) {
	keys := make([]procKey, 0, len(c.p.m))
	for k, e := range c.p.m {
		if e.tree != "" {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b procKey) int { return cmp.Or(strings.Compare(a.host, b.host), cmp.Compare(a.pid, b.pid)) })
	out := binary.AppendUvarint([]byte(procsMagic), uint64(len(keys)))
	for _, k := range keys {
		e := c.p.m[k]
		out = ckpt.AppendString(out, k.host)
		out = binary.AppendUvarint(out, uint64(k.pid))
		out = ckpt.AppendString(out, e.comm)
		out = ckpt.AppendString(out, e.tree)
	}
	return out, nil
}

// UnmarshalBinary adds the checkpoint's processes to the table, or refuses
// it (wrapping models.ErrCheckpoint) and adds none. A local process is
// kept only if it still runs under the same comm: a pid reused since by
// another program must not inherit the old tree. Beyond the table's bound
// the rest are dropped.
func (c procCheckpoint) UnmarshalBinary(data []byte) error {
	if len(data) < len(procsMagic) || string(data[:len(procsMagic)]) != procsMagic {
		return fmt.Errorf("%w: not a %s process table checkpoint", models.ErrCheckpoint, procsMagic)
	}
	r := ckpt.NewReader(data[len(procsMagic):])
	type proc struct {
		k procKey
		e procEntry
	}
	var procs []proc
	n := r.Count()
	for j := uint64(0); j < n && r.Err() == nil; j++ {
		host, pid := r.Str(), r.Uvarint()
		e := procEntry{comm: r.Str(), tree: r.Str()}
		if r.Err() != nil {
			break
		}
		if pid == 0 || pid > math.MaxUint32 || !strings.HasPrefix(e.tree, "tree:") && !strings.HasPrefix(e.tree, "host:") && !strings.HasPrefix(e.tree, containerPrefix) {
			return fmt.Errorf("%w: process %d on %q: bad pid or tree %q", models.ErrCheckpoint, pid, host, e.tree)
		}
		procs = append(procs, proc{procKey{host, uint32(pid)}, e})
	}
	if r.Err() == nil && r.Len() > 0 {
		r.Fail("%d trailing bytes", r.Len())
	}
	if r.Err() != nil {
		return r.Err()
	}
	for _, p := range procs {
		if len(c.p.m) >= c.p.max {
			break
		}
		if c.p.isLocal(p.k.host) && c.p.procRoot != "" {
			if comm, ok := c.p.procComm(p.k.pid); !ok || comm != p.e.comm {
				continue
			}
		}
		c.p.m[p.k] = p.e
	}
	return nil
}
