package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRemoteCollectorToPipeline runs the fleet shape on one machine: `vigil
// pipeline` with its embedded ClickHouse, and `vigil collect --to` streaming
// real kernel events to it with the token. A wrong token is refused.
func TestRemoteCollectorToPipeline(t *testing.T) {
	u := startServer(t, "pipeline", "ingest on")
	bin := vigilBinary(t)

	// A wrong token: the sender is refused (401 is not retried) and says so.
	bad := exec.Command(bin, "collect", "--probes", "exec", "--duration", "20s", "--to", "http://"+u.listen, "--token", "wrong-token-0123456789abcdef")
	var badOut lockedBuffer
	bad.Stdout, bad.Stderr = &badOut, &badOut
	if err := bad.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	uniqueExec(t)
	err := bad.Wait()
	if out := badOut.String(); err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "refused the access token") {
		t.Errorf("collect --to with a wrong token: err=%v, want a 401 error:\n%s", err, out)
	}

	col := exec.Command(bin, "collect", "--probes", "exec", "--duration", "6s", "--to", "http://"+u.listen, "--token", u.token)
	var colOut lockedBuffer
	col.Stdout, col.Stderr = &colOut, &colOut
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	marker := uniqueExec(t)
	if err := col.Wait(); err != nil {
		t.Fatalf("collect --to: %v\n%s", err, colOut.String())
	}
	var got string
	for deadline := time.Now().Add(20 * time.Second); got != "1" && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got, _ = u.chQuery(fmt.Sprintf("SELECT count() FROM vigil.exec_events WHERE has(argv, '%s')", marker))
	}
	if got != "1" {
		t.Fatalf("marker exec stored %q times through the remote pipeline, want 1\ncollector:\n%s", got, colOut.String())
	}
	u.stop(t)
}
