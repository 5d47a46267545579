//go:build !cgo || !linux

package engine

import (
	"context"
	"errors"
)

var errNoCgo = errors.New("libchdb needs a build with cgo on linux (CGO_ENABLED=1); alternatively put an official clickhouse binary on PATH or pass --clickhouse DSN")

func libraryAvailable() error { return errNoCgo }

func runLibrary(context.Context, Options, string, configFiles) error { return errNoCgo }
