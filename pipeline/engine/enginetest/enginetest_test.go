package enginetest_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
)

func TestStart(t *testing.T) {
	h := enginetest.Start(t)
	ctx := context.Background()
	conn := h.Conn(t)
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		t.Fatalf("version: %v", err)
	}
	t.Logf("engine %s at %s, %s", v, h.DSN, h.HTTPURL)

	resp, err := http.Get(h.HTTPURL + "/?query=" + url.QueryEscape("SELECT 1+1"))
	if err != nil {
		t.Fatalf("http: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "2" {
		t.Fatalf("http answer %q, want 2", body)
	}
}
