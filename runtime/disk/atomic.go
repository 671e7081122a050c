package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data so that a crash leaves either the
// old content or the new, never a mix: write a temporary file in the same
// directory, fsync it, rename it over path, fsync the directory (the rename
// itself is only durable once the directory is). The file mode is 0600.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s atomically: create temporary file: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name()) // best effort: the error that matters is err
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s atomically: write %s: %w", path, tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s atomically: fsync %s: %w", path, tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s atomically: close %s: %w", path, tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s atomically: rename: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s atomically: %w", path, err)
	}
	return nil
}

// syncDir makes the directory's entries (a create, rename or link) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	syncErr := d.Sync()
	closeErr := d.Close()
	if err := errors.Join(syncErr, closeErr); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
