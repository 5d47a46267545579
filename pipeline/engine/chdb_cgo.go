//go:build cgo && linux

package engine

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <stdint.h>

struct local_result_v2 {
	char *buf;
	size_t len;
	void *_vec;
	double elapsed;
	uint64_t rows_read;
	uint64_t bytes_read;
	char *error_message;
};

typedef struct local_result_v2 *(*query_fn)(int, char **);
typedef void (*free_fn)(struct local_result_v2 *);

static void *vigil_dlopen(const char *path, char **err) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) *err = dlerror();
	return h;
}

static void *vigil_dlsym(void *h, const char *name) { return dlsym(h, name); }

static struct local_result_v2 *vigil_query(void *fn, int argc, char **argv) {
	return ((query_fn)fn)(argc, argv);
}

static void vigil_free(void *fn, struct local_result_v2 *r) {
	if (fn && r) ((free_fn)fn)(r);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

func libraryAvailable() error { return nil }

type libResult struct {
	errMsg string
	ok     bool // a result struct came back
}

// runLibrary loads libchdb.so and runs the serving query. The C call blocks
// for the engine's lifetime in its own goroutine, so that a cancelled ctx can
// still be answered.
func runLibrary(ctx context.Context, opts Options, lib string, cfg configFiles) error {
	cpath := C.CString(lib)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	h := C.vigil_dlopen(cpath, &cerr)
	if h == nil {
		return fmt.Errorf("load %s: %s", lib, C.GoString(cerr))
	}
	sym := C.CString("query_stable_v2")
	defer C.free(unsafe.Pointer(sym))
	query := C.vigil_dlsym(h, sym)
	if query == nil {
		return fmt.Errorf("load %s: no query_stable_v2 (need chdb with ClickHouse 26.7 or newer)", lib)
	}
	fsym := C.CString("free_result_v2")
	defer C.free(unsafe.Pointer(fsym))
	free := C.vigil_dlsym(h, fsym)

	args := libArgs(opts, cfg)
	done := make(chan libResult, 1)
	go func() {
		// ClickHouse keeps thread-local state; keep the call on one thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		argv := make([]*C.char, len(args))
		for i, a := range args {
			argv[i] = C.CString(a)
		}
		defer func() {
			for _, p := range argv {
				C.free(unsafe.Pointer(p))
			}
		}()
		cargv := (**C.char)(C.malloc(C.size_t(len(argv)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
		defer C.free(unsafe.Pointer(cargv))
		copy(unsafe.Slice(cargv, len(argv)), argv)
		r := C.vigil_query(query, C.int(len(argv)), cargv)
		var res libResult
		if r != nil {
			res.ok = true
			if r.error_message != nil {
				res.errMsg = C.GoString(r.error_message)
			}
			C.vigil_free(free, r)
		}
		done <- res
	}()

	select {
	case res := <-done:
		// The query never ends by itself: whatever happened is a failure,
		// typically a port taken between checkPorts and the listen.
		if ctx.Err() != nil && isCancelled(res) {
			return nil
		}
		return libError(res)
	case <-ctx.Done():
	}
	opts.Logger.Info("stopping clickhouse engine")
	stopCtx, cancel := context.WithTimeout(context.Background(), opts.StopTimeout)
	defer cancel()
	killHold(stopCtx, opts.HTTPPort)
	select {
	case res := <-done:
		if isCancelled(res) {
			return nil
		}
		return libError(res)
	case <-stopCtx.Done():
		return fmt.Errorf("clickhouse engine did not stop within %s; exit the process", opts.StopTimeout)
	}
}

func isCancelled(res libResult) bool {
	return res.ok && (res.errMsg == "" || strings.Contains(res.errMsg, "QUERY_WAS_CANCELLED"))
}

func libError(res libResult) error {
	if !res.ok {
		return errors.New("clickhouse engine returned no result")
	}
	if res.errMsg == "" {
		return errors.New("clickhouse engine stopped serving")
	}
	return fmt.Errorf("clickhouse engine: %s", strings.TrimSpace(res.errMsg))
}

// killHold asks the engine to cancel its hold query, retrying while the HTTP
// listener is not up yet.
func killHold(ctx context.Context, httpPort int) {
	u := "http://" + ListenHost + ":" + strconv.Itoa(httpPort) + "/?query=" +
		url.QueryEscape("KILL QUERY WHERE query_id = '"+holdQueryID+"' ASYNC")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			return
		}
		// An idle keep-alive connection would hold the engine's shutdown
		// until the server times it out.
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
