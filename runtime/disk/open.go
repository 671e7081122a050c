package disk

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"tigerchat/model"
	"tigerchat/runtime/histogram"
	"tigerchat/runtime/loop"
)

var errLocked = errors.New("locked by another process")

// Open opens a formatted data file of sizeBytes logical bytes and checks
// that its header matches opts (identity, size, key). On any error the file
// is left exactly as it was. Completions run on l.
func Open(path string, sizeBytes uint64, l *loop.Loop, opts Options) (*Disk, error) {
	if err := validate(sizeBytes, l, &opts); err != nil {
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	if opts.SplitBytes > 0 {
		return openSplit(path, sizeBytes, l, opts)
	}
	file, err := openFile(path)
	if err != nil {
		return nil, err
	}
	d, err := openChecked(path, file, sizeBytes, opts)
	if err != nil {
		_ = file.Close() // read-only so far: nothing to lose
		return nil, err
	}
	d.start(l)
	return d, nil
}

func validate(sizeBytes uint64, l *loop.Loop, opts *Options) error {
	switch {
	case sizeBytes == 0 || sizeBytes%model.SectorSize != 0 || sizeBytes > SizeMax:
		return fmt.Errorf("size %d must be a positive multiple of %d up to %d", sizeBytes, model.SectorSize, uint64(SizeMax))
	case l == nil:
		return errors.New("nil loop")
	case opts.Key != nil && len(opts.Key) != KeySize:
		return fmt.Errorf("encryption key is %d bytes, want %d (AES-256)", len(opts.Key), KeySize)
	case opts.Workers < 0 || opts.Workers > WorkersMax:
		return fmt.Errorf("workers %d outside [1, %d]", opts.Workers, WorkersMax)
	case opts.InFlightMax < 0 || opts.InFlightMax > InFlightMaxMax:
		return fmt.Errorf("in-flight max %d outside [1, %d]", opts.InFlightMax, InFlightMaxMax)
	}
	if err := validateSplit(sizeBytes, opts); err != nil {
		return err
	}
	if opts.Workers == 0 {
		opts.Workers = WorkersDefault
	}
	if opts.InFlightMax == 0 {
		opts.InFlightMax = InFlightMaxDefault
	}
	if opts.OnFatal == nil {
		opts.OnFatal = defaultOnFatal
	}
	return nil
}

func openFile(path string) (*os.File, error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, newError(ErrNotFormatted, "data file %s does not exist; format the data directory first, or check the path", path)
	case err != nil:
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	case !info.Mode().IsRegular():
		return nil, newError(ErrNotFormatted, "data file %s is not a regular file (mode %v); check the path", path, info.Mode())
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open data file %s (check its permissions): %w", path, err)
	}
	if err := lockFile(file); err != nil {
		_ = file.Close()
		if errors.Is(err, errLocked) {
			return nil, newError(ErrInUse, "data file %s is in use by another process; stop the other tigerchat first", path)
		}
		return nil, fmt.Errorf("lock data file %s: %w", path, err)
	}
	return file, nil
}

// openChecked reads and checks the header; it never writes.
func openChecked(path string, file *os.File, sizeBytes uint64, opts Options) (*Disk, error) {
	h, fileBytes, err := readHeader(path, file)
	if err != nil {
		return nil, err
	}
	aead, err := checkHeader(path, &h, fileBytes, sizeBytes, &opts)
	if err != nil {
		return nil, err
	}
	d := &Disk{
		path:   path,
		file:   file,
		fileIO: file,
		layout: layout{encrypted: h.encrypted, sizeBytes: sizeBytes},
		aead:   aead,
		fileID: h.fileID,
		opts:   opts,
	}
	d.sync = func() error { return fdatasync(file) }
	d.stats.fsyncTimes = histogram.New(histogram.MicrosBounds, 1e6)
	unsafeLazySync(d) // a no-op unless built for the chaos test's broken build
	return d, nil
}

// readHeader returns the header and the file's size in bytes.
func readHeader(path string, file *os.File) (header, uint64, error) {
	info, err := file.Stat()
	if err != nil {
		return header{}, 0, fmt.Errorf("stat data file %s: %w", path, err)
	}
	size := uint64(info.Size())
	if size == 0 {
		return header{}, 0, newError(ErrNotFormatted, "data file %s is empty: it is not formatted; format it first", path)
	}
	h, err := readHeaderFrom(path, file, size)
	return h, size, err
}

// checkHeader compares the header with what the caller expects and returns
// the cipher for an encrypted file.
func checkHeader(path string, h *header, fileBytes, sizeBytes uint64, opts *Options) (cipher.AEAD, error) {
	if h.version != formatVersion {
		return nil, newError(ErrVersion, "data file %s has format version %d, this build reads version %d; run a matching tigerchat build", path, h.version, formatVersion)
	}
	if h.identity != opts.Identity {
		return nil, newError(ErrIdentity, "data file %s belongs to %v, not %v; check the data directory and the config", path, h.identity, opts.Identity)
	}
	if h.sizeBytes != sizeBytes {
		return nil, newError(ErrSize, "data file %s was formatted for %d bytes, the config needs %d; restore the config it was formatted with, or replace this replica (tigerchat recover; docs/operations.md)", path, h.sizeBytes, sizeBytes)
	}
	if want := (layout{encrypted: h.encrypted, sizeBytes: sizeBytes}).fileBytes(); fileBytes < want {
		return nil, newError(ErrTruncated, "data file %s is truncated: %d bytes, want %d; move it aside and replace this replica (tigerchat recover; docs/operations.md)", path, fileBytes, want)
	} else if fileBytes > want {
		return nil, newError(ErrSize, "data file %s has %d bytes, want %d: it was extended outside tigerchat; restore it from a backup", path, fileBytes, want)
	}
	return checkKey(path, h, opts.Key)
}

func checkKey(path string, h *header, key []byte) (cipher.AEAD, error) {
	switch {
	case h.encrypted && key == nil:
		return nil, newError(ErrEncryption, "data file %s is encrypted; configure the key file it was formatted with", path)
	case !h.encrypted && key != nil:
		return nil, newError(ErrEncryption, "data file %s is not encrypted but a key is configured; remove the key from the config, or replace this replica with an encrypted one (tigerchat recover -key-file; docs/operations.md)", path)
	case !h.encrypted:
		return nil, nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	if !keyCheckOK(h, aead) {
		return nil, newError(ErrWrongKey, "data file %s was encrypted with a different key; configure the key file it was formatted with", path)
	}
	return aead, nil
}

// start launches the I/O goroutines: Workers for reads and writes, one for
// syncs.
func (d *Disk) start(l *loop.Loop) {
	d.requests = make(chan *request, d.opts.InFlightMax)
	d.completed = make([]func(), 0, d.opts.InFlightMax)
	d.spare = make([]func(), 0, d.opts.InFlightMax)
	d.syncWaiting = make([]func(), 0, 64)
	d.syncWake = make(chan struct{}, 1)
	d.quit = make(chan struct{})
	d.notifier = l.NewNotifier(d.drain)
	d.goroutines.Add(d.opts.Workers + 1)
	for range d.opts.Workers {
		go d.worker()
	}
	go d.syncer()
}

// Create formats a new data file for opts.Identity and opens it. It refuses
// to touch an existing file. The file appears at path only once complete
// and durable: it is built under a temporary name, fsynced, then linked.
func Create(path string, sizeBytes uint64, l *loop.Loop, opts Options) (*Disk, error) {
	if err := validate(sizeBytes, l, &opts); err != nil {
		return nil, fmt.Errorf("create data file %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, newError(ErrExists, "data file %s already exists; refusing to overwrite it (remove it by hand only if this replica's data may be lost)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create data file %s: %w", path, err)
	}
	if opts.SplitBytes > 0 {
		if err := createSplit(path, sizeBytes, &opts); err != nil {
			return nil, err
		}
		return Open(path, sizeBytes, l, opts)
	}
	if err := format(path, sizeBytes, &opts); err != nil {
		return nil, err
	}
	return Open(path, sizeBytes, l, opts)
}

// format writes the header and preallocates the file under a temporary
// name, then links it into place; a link never replaces an existing file.
func format(path string, sizeBytes uint64, opts *Options) error {
	h, err := newHeader(sizeBytes, opts)
	if err != nil {
		return fmt.Errorf("create data file %s: %w", path, err)
	}
	return createLinked(path, "data file", func(tmp string) error { return writeNewFile(tmp, &h, opts.PreallocateBytes) })
}

// createLinked has build write a complete, synced file under a temporary
// name, then links it to path (a link never replaces an existing file)
// and syncs the directory: a file appears at path only whole and durable.
// what names the file in errors ("data file", "journal file").
func createLinked(path, what string, build func(tmp string) error) error {
	tmp := path + ".format-tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create %s %s: remove leftover %s: %w", what, path, tmp, err)
	}
	if err := build(tmp); err != nil {
		_ = os.Remove(tmp) // incomplete: never a data file
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	defer os.Remove(tmp) // after the link it is a second name for the file
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return newError(ErrExists, "%s %s already exists; refusing to overwrite it", what, path)
	} else if err != nil {
		return fmt.Errorf("create %s %s: link %s: %w", what, path, tmp, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	return nil
}

func newHeader(sizeBytes uint64, opts *Options) (header, error) {
	h := header{version: formatVersion, encrypted: opts.Key != nil, sizeBytes: sizeBytes, identity: opts.Identity}
	_, _ = rand.Read(h.fileID[:]) // never fails: crypto/rand crashes the program instead
	if !h.encrypted {
		return h, nil
	}
	aead, err := newAEAD(opts.Key)
	if err != nil {
		return h, err
	}
	nonce := make([]byte, nonceSize)
	_, _ = rand.Read(nonce)
	sealKeyCheck(&h, aead, nonce)
	return h, nil
}

func writeNewFile(path string, h *header, preallocateBytes uint64) error {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	l := layout{encrypted: h.encrypted, sizeBytes: h.sizeBytes}
	size := int64(l.fileBytes())
	reserve := size
	if preallocateBytes > 0 && preallocateBytes < h.sizeBytes {
		reserve = int64(l.physicalOffset(preallocateBytes / model.SectorSize * model.SectorSize))
	}
	if err := preallocate(file, reserve); err != nil {
		_ = file.Close()
		return fmt.Errorf("preallocate %d bytes for %s (is the disk full?): %w", reserve, path, err)
	}
	if err := file.Truncate(size); err != nil { // the rest stays sparse
		_ = file.Close()
		return fmt.Errorf("size %s to %d bytes: %w", path, size, err)
	}
	if _, err := file.WriteAt(encodeHeaderZone(h), 0); err != nil {
		_ = file.Close()
		return fmt.Errorf("write header of %s: %w", path, err)
	}
	if err := file.Sync(); err != nil {
		_ = file.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
