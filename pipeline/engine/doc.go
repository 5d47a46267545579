// Package engine runs Vigil's embedded ClickHouse: a local engine bound to
// 127.0.0.1 that keeps its data under a directory and serves the native
// protocol and HTTP, so that clickhouse-client, Grafana, DBeaver or curl can
// query the same data the pipeline writes.
//
// There are two halves:
//
//   - RunForeground runs the engine in the current process and blocks. With an
//     official clickhouse binary on PATH it runs `clickhouse server` with a
//     generated config; otherwise it loads libchdb.so (ClickHouse as a library)
//     at run time with dlopen and keeps a blocking query running that has the
//     TCP and HTTP listeners started. It is what the hidden child command
//     `vigil clickhouse` calls.
//   - Start launches a Supervisor that re-executes a binary (by default the
//     current one) with Options.ChildArgs as a child process, waits until the
//     native port answers a Ping, restarts the child with backoff if it dies
//     and stops it on Close.
//
// The engine runs in a child process rather than in the pipeline's process
// because ClickHouse (as a library too) owns process-wide state: signal
// handlers, a crash on a failed native login, threads that cannot be unloaded.
// A crash of the engine must not take the pipeline down, and the pipeline must
// be able to restart it.
package engine
