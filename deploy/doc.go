// Package deploy holds the deployment files (docker-compose.yml at the
// repository root, deploy/Dockerfile, deploy/grafana, deploy/prometheus,
// deploy/clickhouse, deploy/kubernetes). Its tests check that the files agree
// with each other and with the binary's documented configuration, and that
// every Grafana query runs against the real ClickHouse schema: nothing here can
// run Docker or Kubernetes, so consistency is what can be proven.
package deploy
