package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Checkpoint files under Options.StateDir. The correlator is not
// checkpointed: open incidents are in ClickHouse, and after a restart new
// anomalies open new incidents.
const (
	bankFile    = "detect-bank.ckpt"
	noveltyFile = "detect-novelty.ckpt"
)

func (d *Detector) restore() error {
	var errs []error
	load := func(name string, into interface{ UnmarshalBinary([]byte) error }) {
		b, err := os.ReadFile(filepath.Join(d.o.StateDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err == nil {
			err = into.UnmarshalBinary(b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", name, err))
		}
	}
	load(bankFile, d.bank)
	load(noveltyFile, d.nov)
	return errors.Join(errs...)
}

// checkpoint writes the models' state; failures are logged, not returned:
// losing a checkpoint costs a relearning period, not data.
func (d *Detector) checkpoint() {
	if d.o.StateDir == "" {
		return
	}
	save := func(name string, from interface{ MarshalBinary() ([]byte, error) }) error {
		b, err := from.MarshalBinary()
		if err != nil {
			return err
		}
		return writeAtomic(filepath.Join(d.o.StateDir, name), b)
	}
	if err := os.MkdirAll(d.o.StateDir, 0o750); err != nil {
		d.o.Logger.Warn("detector checkpoint not written", "err", err)
		return
	}
	for name, m := range map[string]interface{ MarshalBinary() ([]byte, error) }{bankFile: d.bank, noveltyFile: d.nov} {
		if err := save(name, m); err != nil {
			d.o.Logger.Warn("detector checkpoint not written", "file", name, "err", err)
		}
	}
}

// writeAtomic replaces path with data so a crash mid-write leaves the old
// checkpoint, never a torn one.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}
