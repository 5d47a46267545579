package collector

import (
	"github.com/apache/arrow-go/v18/arrow"
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
}, nil)

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
