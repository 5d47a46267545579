package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vigil-dev/vigil/collector"
)

// A segment is one file holding one INSERT: a header line
//
//	vigil-spool 1 <kind> <token>\n
//
// followed by the batches in collector.Recorder's format (one Arrow IPC
// stream per batch, tagged with its kind). It is written under a .tmp name,
// fsync'd, renamed to NNNNNNNNNNNNNNNNNNNN.seg (a sequence number, so names
// sort oldest first) and the directory fsync'd: a .seg file is complete, a
// .tmp file is a write that never finished and was never acknowledged.
const (
	segMagic   = "vigil-spool"
	segVersion = "1"
	segExt     = ".seg"
	tmpExt     = ".tmp"
	// rejectDir keeps segments ClickHouse can never accept (their columns
	// do not convert), out of the replay queue but not deleted.
	rejectDir = "rejected"
)

// segment is one spooled INSERT on disk.
type segment struct {
	seq   uint64
	path  string
	size  int64
	rows  int
	kind  collector.Kind
	token string
	// since is when its oldest row reached the spool; for a segment left by
	// an earlier run, the file's modification time (its rows are older).
	since time.Time
}

func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segExt) }

// encodeSegment renders the file contents of one INSERT.
func encodeSegment(kind collector.Kind, token string, recs []arrow.RecordBatch) ([]byte, error) {
	if strings.ContainsAny(string(kind), " \n") || strings.ContainsAny(token, " \n") || token == "" {
		return nil, fmt.Errorf("encode segment: bad kind %q or token %q", kind, token)
	}
	var buf bytes.Buffer
	buf.WriteString(segMagic + " " + segVersion + " " + string(kind) + " " + token + "\n")
	rec := collector.NewRecorder(&buf)
	for _, r := range recs {
		if err := rec.Write(collector.Batch{Kind: kind, Record: r}); err != nil {
			return nil, fmt.Errorf("encode segment: %w", err)
		}
	}
	if err := rec.Close(); err != nil {
		return nil, fmt.Errorf("encode segment: %w", err)
	}
	return buf.Bytes(), nil
}

// writeFile writes data to dir/name durably: temp file, fsync, rename,
// fsync of the directory. When it returns nil the file survives a crash.
func writeFile(dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	tmp := path + tmpExt
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// readHeader reads a segment's header line.
func readHeader(br *bufio.Reader) (collector.Kind, string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("read header: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != segMagic {
		return "", "", errors.New("not a spool segment")
	}
	if f[1] != segVersion {
		return "", "", fmt.Errorf("spool segment version %s, this vigil reads %s", f[1], segVersion)
	}
	return collector.Kind(f[2]), f[3], nil
}

// readSegment decodes a segment file. The caller owns the records.
func readSegment(path string) (collector.Kind, string, []arrow.RecordBatch, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	kind, token, err := readHeader(br)
	if err != nil {
		return "", "", nil, err
	}
	var recs []arrow.RecordBatch
	err = collector.ReadRecording(br, func(b collector.Batch) error {
		if b.Kind != kind {
			b.Record.Release()
			return fmt.Errorf("batch of kind %s in a %s segment", b.Kind, kind)
		}
		recs = append(recs, b.Record)
		return nil
	})
	if err != nil {
		release(recs)
		return "", "", nil, err
	}
	return kind, token, recs, nil
}

// scanDir lists the complete segments in dir, oldest first, and removes
// unfinished .tmp files (writes that were never acknowledged).
func scanDir(dir string) ([]*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasSuffix(name, tmpExt) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		if !strings.HasSuffix(name, segExt) { // LOCK, rejected/
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		s := &segment{seq: seq, path: filepath.Join(dir, name), size: info.Size(), since: info.ModTime()}
		if f, err := os.Open(s.path); err == nil {
			// The header is enough to account the segment; rows are
			// counted when it is replayed.
			s.kind, s.token, _ = readHeader(bufio.NewReader(io.LimitReader(f, 4096)))
			_ = f.Close()
		}
		segs = append(segs, s)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	return segs, nil
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}
