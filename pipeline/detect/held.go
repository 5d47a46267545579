package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-dev/vigil/models/ckpt"
	"github.com/vigil-dev/vigil/query/incidents"
)

// The hold file keeps what the sink still held for ClickHouse when it
// closed: the inserts in order, each with its deduplication token, so a
// later start stores them once even if ClickHouse took some of them just
// before the stop.
//
// Layout after the magic (uvarints unless said otherwise; strings are a
// uvarint length and bytes, times varint Unix ns, floats 8 bytes): the
// number of inserts, then per insert its table, token and row count, then
// per table:
//
//	metrics:   per row ts, host, entity kind, entity, series, value
//	anomalies: per row id, ts, host, entity kind, entity, series, detector,
//	           score, severity, expected, observed, window start and end,
//	           evidence (value, container, comm, pid, tree, event ids),
//	           incident id
//	incidents: per row id, opened, updated, resolved (0, or 1 and a
//	           time), state, severity, title, hosts, entities, anomaly ids,
//	           summary, model, prompt and completion tokens; then the ids
//	           to summarize once stored
const heldMagic = "vigil-detect-held\x01"

// keepHeld writes what is still held to HoldFile at Close, or drops and
// counts it when there is no file or it cannot be written.
func (s *Sink) keepHeld() {
	n := s.heldRows.Load()
	if s.o.HoldFile == "" {
		if n > 0 {
			s.droppedRows.Add(uint64(n))
			s.o.Logger.Error("detect: rows not stored at shutdown: ClickHouse refused them", "rows", n)
		}
		return
	}
	if n == 0 {
		s.heldStored()
		return
	}
	err := os.MkdirAll(filepath.Dir(s.o.HoldFile), 0o700)
	if err == nil {
		err = writeAtomic(s.o.HoldFile, encodeHeld(s.held))
	}
	if err != nil {
		s.droppedRows.Add(uint64(n))
		s.o.Logger.Error("detect: rows not stored at shutdown, and not kept", "rows", n, "file", s.o.HoldFile, "err", err)
		return
	}
	s.o.Logger.Warn("detect: ClickHouse has not taken every row; kept for the next start", "rows", n, "file", s.o.HoldFile)
}

// restoreHeld queues the inserts a previous run kept in HoldFile. A file
// that does not decode is renamed aside (".bad"), never deleted, and the
// sink starts without it.
func (s *Sink) restoreHeld() {
	if s.o.HoldFile == "" || s.o.Conn == nil { // left for a sink that can store them
		return
	}
	b, err := os.ReadFile(s.o.HoldFile)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var held []heldInsert
	if err == nil {
		held, err = decodeHeld(b)
	}
	if err != nil {
		bad := s.o.HoldFile + ".bad"
		if rerr := os.Rename(s.o.HoldFile, bad); rerr == nil {
			s.o.Logger.Error("detect: kept rows not restored; file set aside", "file", bad, "err", err)
		} else {
			s.o.Logger.Error("detect: kept rows not restored", "file", s.o.HoldFile, "err", err)
		}
		return
	}
	var rows int
	for _, h := range held {
		rows += h.rows
	}
	s.held = append(held, s.held...)
	s.heldRows.Add(int64(rows))
	s.holdFileLive = true
	s.o.Logger.Info("detect: restored rows kept at the last stop; storing them first", "rows", rows, "inserts", len(held), "file", s.o.HoldFile)
}

// heldStored removes HoldFile once nothing is held: everything it had is
// in ClickHouse.
func (s *Sink) heldStored() {
	if !s.holdFileLive || len(s.held) > 0 {
		return
	}
	if err := os.Remove(s.o.HoldFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.o.Logger.Warn("detect: kept rows are stored but their file stays", "file", s.o.HoldFile, "err", err)
	}
	s.holdFileLive = false
}

func encodeHeld(held []heldInsert) []byte {
	b := append([]byte(nil), heldMagic...)
	b = binary.AppendUvarint(b, uint64(len(held)))
	str, u := ckpt.AppendString, binary.AppendUvarint
	for _, h := range held {
		b = str(b, h.table)
		b = str(b, h.token)
		b = u(b, uint64(h.rows))
		switch h.table {
		case tableMetrics:
			m := &h.metrics
			for i := range h.rows {
				b = ckpt.AppendTime(b, m.ts[i])
				b = str(str(str(str(b, m.host[i]), m.entityKind[i]), m.entity[i]), m.series[i])
				b = ckpt.AppendFloat64(b, m.value[i])
			}
		case tableAnomalies:
			for _, a := range h.anomalies {
				b = str(b, a.ID)
				b = ckpt.AppendTime(b, a.TS)
				b = str(str(str(str(str(b, a.Host), a.EntityKind), a.Entity), a.Series), a.Detector)
				b = ckpt.AppendFloat64(b, a.Score)
				b = str(b, a.Severity)
				b = ckpt.AppendFloat64(ckpt.AppendFloat64(b, a.Expected), a.Observed)
				b = ckpt.AppendTime(ckpt.AppendTime(b, a.WindowStart), a.WindowEnd)
				e := &a.Evidence
				b = u(str(str(str(b, e.Value), e.Container), e.Comm), uint64(e.PID))
				b = str(b, e.Tree)
				b = u(b, uint64(len(e.EventIDs)))
				for _, id := range e.EventIDs {
					b = u(b, id)
				}
				b = str(b, a.IncidentID)
			}
		case tableIncidents:
			for _, r := range h.incidents {
				b = str(b, r.id)
				b = ckpt.AppendTime(ckpt.AppendTime(b, r.opened), r.updated)
				if r.resolved == nil {
					b = u(b, 0)
				} else {
					b = ckpt.AppendTime(u(b, 1), *r.resolved)
				}
				b = str(str(str(b, r.state), r.severity), r.title)
				b = ckpt.AppendStrings(ckpt.AppendStrings(ckpt.AppendStrings(b, r.hosts), r.entities), r.anomalyIDs)
				b = str(str(b, r.summary), r.model)
				b = u(u(b, uint64(r.promptTok)), uint64(r.complTok))
			}
			b = ckpt.AppendStrings(b, h.summarize)
		}
	}
	return b
}

// decodeHeld reads a hold file. It trusts no count beyond the bytes left
// to back it (ckpt.Reader), so a corrupt file cannot make it allocate
// more than the file's own size.
func decodeHeld(b []byte) ([]heldInsert, error) {
	rest, ok := strings.CutPrefix(string(b), heldMagic)
	if !ok {
		return nil, fmt.Errorf("read kept rows: %w: not a hold file of this version", ckpt.ErrBad)
	}
	r := ckpt.NewReader([]byte(rest))
	n := r.Count()
	var held []heldInsert
	for range n {
		h := heldInsert{table: r.Str(), token: r.Str()}
		rows := r.Count()
		h.rows = int(rows)
		switch h.table {
		case tableMetrics:
			m := &h.metrics
			for range rows {
				m.ts = append(m.ts, r.Time())
				m.host = append(m.host, r.Str())
				m.entityKind = append(m.entityKind, r.Str())
				m.entity = append(m.entity, r.Str())
				m.series = append(m.series, r.Str())
				m.value = append(m.value, r.Float64())
			}
		case tableAnomalies:
			for range rows {
				a := incidents.AnomalyRow{ID: r.Str(), TS: r.Time(), Host: r.Str(), EntityKind: r.Str(), Entity: r.Str(),
					Series: r.Str(), Detector: r.Str(), Score: r.Float64(), Severity: r.Str(), Expected: r.Float64(),
					Observed: r.Float64(), WindowStart: r.Time(), WindowEnd: r.Time()}
				a.Evidence = incidents.Evidence{Value: r.Str(), Container: r.Str(), Comm: r.Str(), PID: uint32(min(r.Uvarint(), 1<<32-1)), Tree: r.Str()}
				for range r.Count() {
					a.Evidence.EventIDs = append(a.Evidence.EventIDs, r.Uvarint())
				}
				a.IncidentID = r.Str()
				h.anomalies = append(h.anomalies, a)
			}
		case tableIncidents:
			for range rows {
				inc := &incidentRow{id: r.Str(), opened: r.Time(), updated: r.Time()}
				switch r.Uvarint() {
				case 0:
				case 1:
					t := r.Time()
					inc.resolved = &t
				default:
					r.Fail("incident %q: bad resolved flag", inc.id)
				}
				inc.state, inc.severity, inc.title = r.Str(), r.Str(), r.Str()
				inc.hosts, inc.entities, inc.anomalyIDs = r.Strings(), r.Strings(), r.Strings()
				inc.summary, inc.model = r.Str(), r.Str()
				inc.promptTok, inc.complTok = uint32(min(r.Uvarint(), 1<<32-1)), uint32(min(r.Uvarint(), 1<<32-1))
				h.incidents = append(h.incidents, inc)
			}
			h.summarize = r.Strings()
		default:
			r.Fail("unknown table %q", h.table)
		}
		if r.Err() != nil {
			break
		}
		held = append(held, h)
	}
	if r.Err() == nil && r.Len() != 0 {
		r.Fail("%d bytes after the last insert", r.Len())
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("read kept rows: %w", err)
	}
	return held, nil
}
