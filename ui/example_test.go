package ui_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-dev/vigil/ui"
)

// The wiring cmd/vigil does: every source is optional, the pipeline
// publishes to Hub(), and Run blocks until the context ends.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := ui.New(ui.Options{
		Listen: "127.0.0.1:0",
		Token:  "generated-and-kept-in-the-data-dir",
		Logger: slog.Default(),
		// Events: liveAdapter, Health: healthAdapter, Incidents: …, Asker: …
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(srv.URL() != "")
	srv.Hub().Publish("event", ui.Event{"kind": "exec", "argv": []string{"sh", "-c", "id"}})
	stop() // in vigil: SIGTERM
	if err := srv.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output: true
}
