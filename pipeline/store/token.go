package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vigil-dev/vigil/collector"
)

// InsertWithToken inserts recs (all of kind's one schema) as one INSERT
// carrying the given insert_deduplication_token, once: no retry, no
// buffering. It is for callers that keep the rows and the token durable
// themselves (pipeline/spool) and repeat the insert with the same token,
// possibly after a restart, so that ClickHouse stores the rows once.
//
// It does not take ownership of recs. It touches none of the state that
// Write, Flush and Run own, so it may run concurrently with them and with
// itself. A success is counted in Stats (Inserts, Rows); a failure is not
// counted as dropped: the caller still has the rows.
func (w *Writer) InsertWithToken(ctx context.Context, kind collector.Kind, token string, recs []arrow.RecordBatch) error {
	if len(recs) == 0 {
		return nil
	}
	if token == "" {
		return errors.New("insert with token: empty token")
	}
	rows := 0
	for _, r := range recs {
		rows += int(r.NumRows())
	}
	table := w.opts.Table(kind)
	if err := w.insert(ctx, table, token, recs); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", rows, table, err)
	}
	w.inserts.Add(1)
	w.rows.Add(uint64(rows))
	return nil
}

// IsPermanent reports whether an error from InsertWithToken can never
// succeed on retry: the rows do not convert to the table's columns (a
// schema mismatch), as opposed to a network or server failure.
func IsPermanent(err error) bool {
	var ce *convertError
	return errors.As(err, &ce)
}
