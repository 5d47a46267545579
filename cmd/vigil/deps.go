package main

// Temporary: pins dependencies until the packages that use them land.
import (
 _ "github.com/apache/arrow-go/v18/arrow/ipc"
 _ "github.com/apache/arrow-go/v18/arrow/array"
 _ "github.com/ClickHouse/clickhouse-go/v2"
 _ "github.com/cilium/ebpf/ringbuf"
 _ "github.com/cilium/ebpf/link"
 _ "github.com/sashabaranov/go-openai"
 _ "github.com/gorilla/websocket"
 _ "github.com/spf13/cobra"
 _ "github.com/prometheus/client_golang/prometheus/promhttp"
 _ "github.com/chromedp/chromedp"
 _ "github.com/knadh/koanf/v2"
 _ "github.com/knadh/koanf/parsers/yaml"
 _ "github.com/knadh/koanf/providers/file"
 _ "github.com/knadh/koanf/providers/env/v2"
 _ "github.com/knadh/koanf/providers/posflag"
 _ "go.uber.org/goleak"
)
