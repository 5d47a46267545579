package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-dev/vigil/models/ckpt"
	"github.com/vigil-dev/vigil/query/incidents"
)

// The hold file keeps what the sink holds for ClickHouse while ClickHouse
// refuses it, so that neither a stop nor a crash during an outage loses a
// detection: from the first refused insert on, every insert held is
// appended to it (and fsync'd) before the writer moves on, and every
// insert stored or given up on is marked done; once nothing is held the
// file is removed. Each insert keeps its deduplication token, so a later
// start stores it once even if ClickHouse took it just before the end. At
// an orderly stop the file is rewritten with only what is still held.
//
// Layout: the magic, then records, each a uvarint length and the record:
// a kind byte, then for an insert (recInsert) its table, token and row
// count and the rows, for a done mark (recDone) the token. Strings are a
// uvarint length and bytes, times varint Unix ns, floats 8 bytes,
// integers uvarints. Rows per table:
//
//	metrics:   ts, host, entity kind, entity, series, value
//	anomalies: id, ts, host, entity kind, entity, series, detector,
//	           score, severity, expected, observed, window start and end,
//	           evidence (value, container, comm, pid, tree, event ids),
//	           incident id
//	incidents: id, opened, updated, resolved (0, or 1 and a time), state,
//	           severity, title, hosts, entities, anomaly ids, summary,
//	           model, prompt and completion tokens; after the rows, the
//	           ids to summarize once stored
//
// A record cut short at the end is what a crash in the middle of an
// append leaves: it is dropped, and the records before it are read.
const heldMagic = "vigil-detect-held\x02"

const (
	recInsert = 1
	recDone   = 2
)

// logHeld starts the hold file when ClickHouse first refuses an insert:
// everything held so far, then each change as it happens.
func (s *Sink) logHeld() {
	if s.o.HoldFile == "" || s.holdLog != nil {
		return
	}
	err := s.writeHeld()
	if err == nil {
		s.holdLog, err = os.OpenFile(s.o.HoldFile, os.O_WRONLY|os.O_APPEND, 0)
	}
	if err != nil {
		s.o.Logger.Error("detect: held rows are in memory only", "file", s.o.HoldFile, "err", err)
	}
}

// writeHeld replaces the hold file with what is held now.
func (s *Sink) writeHeld() error {
	err := os.MkdirAll(filepath.Dir(s.o.HoldFile), 0o700)
	if err == nil {
		err = writeAtomic(s.o.HoldFile, encodeHeld(s.held))
	}
	if err == nil {
		s.holdOnDisk = true
	}
	return err
}

// logRecord appends one record to the hold file, if it is being kept;
// inserts are fsync'd, done marks need not be (a lost one stores an
// insert again under its token, which ClickHouse deduplicates).
func (s *Sink) logRecord(rec []byte, sync bool) {
	if s.holdLog == nil {
		return
	}
	_, err := s.holdLog.Write(binary.AppendUvarint(nil, uint64(len(rec))))
	if err == nil {
		_, err = s.holdLog.Write(rec)
	}
	if err == nil && sync {
		err = s.holdLog.Sync()
	}
	if err != nil {
		s.o.Logger.Error("detect: hold file not written; held rows are in memory only", "file", s.o.HoldFile, "err", err)
		_ = s.holdLog.Close()
		s.holdLog = nil
	}
}

// keepHeld rewrites the hold file with what is still held at Close, or
// drops and counts it when there is no file or it cannot be written.
func (s *Sink) keepHeld() {
	n := s.heldRows.Load()
	if s.holdLog != nil {
		_ = s.holdLog.Close()
		s.holdLog = nil
	}
	if s.o.HoldFile == "" {
		if n > 0 {
			s.droppedRows.Add(uint64(n))
			s.o.Logger.Error("detect: rows not stored at shutdown: ClickHouse refused them", "rows", n)
		}
		return
	}
	if n == 0 {
		s.removeHeld()
		return
	}
	if err := s.writeHeld(); err != nil {
		s.droppedRows.Add(uint64(n))
		s.o.Logger.Error("detect: rows not stored at shutdown, and not kept", "rows", n, "file", s.o.HoldFile, "err", err)
		return
	}
	s.o.Logger.Warn("detect: ClickHouse has not taken every row; kept for the next start", "rows", n, "file", s.o.HoldFile)
}

// restoreHeld queues the inserts a previous run left in HoldFile, at a
// stop or a crash, and goes on keeping the file. One that does not
// decode is renamed aside (".bad"), never deleted, and the sink starts
// without it.
func (s *Sink) restoreHeld() {
	if s.o.HoldFile == "" || s.o.Conn == nil { // left for a sink that can store them
		return
	}
	b, err := os.ReadFile(s.o.HoldFile)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	s.holdOnDisk = true
	var held []heldInsert
	torn := false
	if err == nil {
		held, torn, err = decodeHeld(b)
	}
	if err != nil {
		bad := s.o.HoldFile + ".bad"
		if rerr := os.Rename(s.o.HoldFile, bad); rerr == nil {
			s.holdOnDisk = false
			s.o.Logger.Error("detect: kept rows not restored; file set aside", "file", bad, "err", err)
		} else {
			s.o.Logger.Error("detect: kept rows not restored", "file", s.o.HoldFile, "err", err)
		}
		return
	}
	if torn {
		s.o.Logger.Warn("detect: the hold file ends in a record cut short (a crash while writing it); the records before it are restored", "file", s.o.HoldFile)
	}
	var rows int
	for _, h := range held {
		rows += h.rows
	}
	s.held = append(held, s.held...)
	s.heldRows.Add(int64(rows))
	s.o.Logger.Info("detect: restored rows kept by the last run; storing them first", "rows", rows, "inserts", len(held), "file", s.o.HoldFile)
	s.logHeld() // rewritten whole: a torn tail must not be appended to
	s.removeHeld()
}

// removeHeld removes the hold file once nothing is held: everything it
// had is in ClickHouse, or given up on and counted.
func (s *Sink) removeHeld() {
	if len(s.held) > 0 || !s.holdOnDisk {
		return
	}
	if s.holdLog != nil {
		_ = s.holdLog.Close()
		s.holdLog = nil
	}
	if err := os.Remove(s.o.HoldFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.o.Logger.Warn("detect: held rows are stored but their file stays", "file", s.o.HoldFile, "err", err)
	}
	s.holdOnDisk = false
}

func encodeHeld(held []heldInsert) []byte {
	b := append([]byte(nil), heldMagic...)
	for i := range held {
		rec := appendInsert(nil, &held[i])
		b = append(binary.AppendUvarint(b, uint64(len(rec))), rec...)
	}
	return b
}

func appendDone(b []byte, token string) []byte {
	return ckpt.AppendString(append(b, recDone), token)
}

func appendInsert(b []byte, h *heldInsert) []byte {
	str, u := ckpt.AppendString, binary.AppendUvarint
	b = append(b, recInsert)
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
	return b
}

// decodeHeld reads a hold file: the inserts not marked done, in order,
// and whether its last record was cut short. It trusts no count beyond
// the bytes left to back it (ckpt.Reader), so a corrupt file cannot make
// it allocate more than the file's own size.
func decodeHeld(b []byte) (held []heldInsert, torn bool, err error) {
	rest, ok := strings.CutPrefix(string(b), heldMagic)
	if !ok {
		return nil, false, fmt.Errorf("read kept rows: %w: not a hold file of this version", ckpt.ErrBad)
	}
	buf := []byte(rest)
	for len(buf) > 0 {
		n, w := binary.Uvarint(buf)
		if w <= 0 || n > uint64(len(buf)-w) {
			if w < 0 { // a length no append writes
				return nil, false, fmt.Errorf("read kept rows: %w: bad record length", ckpt.ErrBad)
			}
			return held, true, nil
		}
		r := ckpt.NewReader(buf[w : w+int(n)])
		buf = buf[w+int(n):]
		kind := r.Uvarint()
		switch kind {
		case recInsert:
			h := decodeInsert(r)
			if r.Err() == nil {
				held = append(held, h)
			}
		case recDone:
			tok := r.Str()
			held = slices.DeleteFunc(held, func(h heldInsert) bool { return h.token == tok })
		default:
			r.Fail("unknown record kind %d", kind)
		}
		if r.Err() == nil && r.Len() != 0 {
			r.Fail("%d bytes after a record", r.Len())
		}
		if err := r.Err(); err != nil {
			return nil, false, fmt.Errorf("read kept rows: %w", err)
		}
	}
	return held, false, nil
}

func decodeInsert(r *ckpt.Reader) heldInsert {
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
	return h
}
