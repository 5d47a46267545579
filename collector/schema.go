package collector

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Column types shared by every schema. The store maps them to ClickHouse as
// timestamp[ns, UTC] → DateTime64(9), uint32 → UInt32, uint64 → UInt64,
// string → String, dictionary<int32, string> → LowCardinality(String) and
// list<string> → Array(String). No other Arrow types are used.
var (
	typeTS      = arrow.FixedWidthTypes.Timestamp_ns // UTC
	typeU32     = arrow.PrimitiveTypes.Uint32
	typeU64     = arrow.PrimitiveTypes.Uint64
	typeString  = arrow.BinaryTypes.String
	typeDict    = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	typeStrings = arrow.ListOfNonNullable(arrow.BinaryTypes.String)
)

func col(name string, t arrow.DataType) arrow.Field {
	return arrow.Field{Name: name, Type: t}
}

// execSchema describes KindExec, one row per successful execve(2):
//
//	ts         timestamp[ns, UTC]  when the new image started
//	host       dictionary<string>  Options.Host
//	pid        uint32              process id (tgid)
//	ppid       uint32              real parent's tgid
//	uid        uint32              real uid
//	gid        uint32              real gid
//	comm       dictionary<string>  task name after exec (≤15 bytes)
//	filename   string              path passed to execve, as resolved by the kernel
//	argv       list<string>        arguments, at most 1024 bytes in all (longer argv is cut)
//	cgroup_id  uint64              cgroup v2 id of the process
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
//	exec_ancestor  uint32              nearest ancestor that exec'd: ppid, or the process a fork-only
//	                                   parent (a subshell) was forked from; 0 if unknown
//
// exec_ancestor was added after the first release, at the end (see added).
var execSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("pid", typeU32),
	col("ppid", typeU32),
	col("uid", typeU32),
	col("gid", typeU32),
	col("comm", typeDict),
	col("filename", typeString),
	col("argv", typeStrings),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
	col("exec_ancestor", typeU32),
}, nil)

// added lists, per kind, the columns appended to its schema after the first
// release, oldest first. A pipeline accepts a batch from an older collector
// that lacks a suffix of them and fills those with their type's zero (see
// CheckColumns and Upgrade), so pipelines can be upgraded before their
// collectors.
var added = map[Kind][]string{
	KindExec: {"exec_ancestor"},
}

// CheckColumns checks that got has kind's columns, ignoring schema
// metadata, or an older version's: those lacking a suffix of added[k],
// which Upgrade fills in.
func CheckColumns(k Kind, got *arrow.Schema) error {
	want := schemas[k]
	if want == nil {
		return fmt.Errorf("unknown kind %q", k)
	}
	if missing := want.NumFields() - got.NumFields(); missing < 0 || missing > len(added[k]) {
		return fmt.Errorf("%d columns, want %d", got.NumFields(), want.NumFields())
	}
	for i := range got.NumFields() {
		g, w := got.Field(i), want.Field(i)
		if g.Name != w.Name || !arrow.TypeEqual(g.Type, w.Type) || g.Nullable != w.Nullable {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, g.Name, g.Type, w.Name, w.Type)
		}
	}
	return nil
}

// Upgrade returns rec, whose columns CheckColumns accepted, under
// Schema(k): without its schema's metadata, and with the columns an older
// version lacks filled with their type's zero value. The caller still owns
// rec.
func Upgrade(k Kind, rec arrow.RecordBatch, alloc memory.Allocator) arrow.RecordBatch {
	want := schemas[k]
	cols := slices.Clone(rec.Columns())
	for i := len(cols); i < want.NumFields(); i++ {
		b := array.NewBuilder(alloc, want.Field(i).Type)
		b.AppendEmptyValues(int(rec.NumRows()))
		a := b.NewArray()
		b.Release()
		defer a.Release() // the record batch holds its own reference
		cols = append(cols, a)
	}
	return array.NewRecordBatch(want, cols, rec.NumRows())
}

// schemas maps every kind to its one schema.
var schemas = map[Kind]*arrow.Schema{
	KindExec:          execSchema,
	KindExit:          exitSchema,
	KindTCP:           tcpSchema,
	KindRetransmit:    retransmitSchema,
	KindFile:          fileSchema,
	KindPriv:          privSchema,
	KindSyscallCounts: syscallCountsSchema,
	KindSignal:        signalSchema,
	KindOOM:           oomSchema,
	KindRunqLatency:   runqSchema,
}

// Schema returns the Arrow schema of a kind's record batches, or nil for an
// unknown kind. Each schema is documented on its variable (execSchema,
// exitSchema, tcpSchema, ...) beside the kind's probe; column names equal
// the ClickHouse column names.
func Schema(k Kind) *arrow.Schema {
	return schemas[k]
}

// Kinds lists every kind that has a schema, in a stable order.
func Kinds() []Kind {
	return []Kind{KindExec, KindExit, KindTCP, KindRetransmit, KindFile, KindPriv, KindSignal, KindOOM, KindSyscallCounts, KindRunqLatency}
}

// Table returns the ClickHouse table name for a kind: kind+"_events", or the
// kind itself for the aggregated kinds (syscall_counts, runq_latency).
func Table(k Kind) string {
	if aggregatedKinds[k] {
		return string(k)
	}
	return string(k) + "_events"
}

var aggregatedKinds = map[Kind]bool{KindSyscallCounts: true, KindRunqLatency: true}
