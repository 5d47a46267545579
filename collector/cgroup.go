package collector

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// cgroupResolver maps cgroup v2 ids (bpf_get_current_cgroup_id, kernfs
// node ids) to the container id and Kubernetes pod UID in the cgroup's
// path. An id is resolved once through open_by_handle_at on the cgroup2
// mount (kernfs file handles carry the id), then cached; the cache is
// bounded and reset when full. Safe for concurrent use.
type cgroupResolver struct {
	mountFD int // guarded by mu for close; fd of the cgroup2 mount (not O_PATH: open_by_handle_at refuses it), -1 if none

	mu    sync.RWMutex
	cache map[uint64]cgroupInfo // guarded by mu
}

type cgroupInfo struct {
	path        string
	containerID []byte
	podUID      []byte
}

const maxCgroupCache = 16384

// fileidKernfs is the kernel's FILEID_KERNFS file handle type.
const fileidKernfs = 0xfe

func newCgroupResolver() *cgroupResolver {
	r := &cgroupResolver{mountFD: -1, cache: map[uint64]cgroupInfo{}}
	if mnt := cgroup2Mount(); mnt != "" {
		if fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			r.mountFD = fd
		}
	}
	return r
}

// cgroup2Mount finds where cgroup v2 is mounted ("" if nowhere).
func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if fs := strings.Fields(pre); len(fs) >= 5 {
			return fs[4]
		}
	}
	return ""
}

func (r *cgroupResolver) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mountFD >= 0 {
		unix.Close(r.mountFD)
		r.mountFD = -1
	}
}

// lookup returns what is known about a cgroup id; unknown ids give zero
// values (and are cached as such).
func (r *cgroupResolver) lookup(id uint64) cgroupInfo {
	if r == nil || id == 0 {
		return cgroupInfo{}
	}
	r.mu.RLock()
	info, ok := r.cache[id]
	r.mu.RUnlock()
	if ok {
		return info
	}
	info.path = r.path(id)
	info.containerID, info.podUID = parseCgroupPath(info.path)
	r.mu.Lock()
	if len(r.cache) >= maxCgroupCache {
		clear(r.cache)
	}
	r.cache[id] = info
	r.mu.Unlock()
	return info
}

// path resolves a cgroup id to its path below the cgroup2 mount.
func (r *cgroupResolver) path(id uint64) string {
	if r.mountFD < 0 {
		return ""
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], id)
	h := unix.NewFileHandle(fileidKernfs, b[:])
	fd, err := unix.OpenByHandleAt(r.mountFD, h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + itoa(fd))
	if err != nil {
		return ""
	}
	return p
}

func itoa(n int) string {
	return string(appendInt(nil, n))
}

func appendInt(dst []byte, n int) []byte {
	if n >= 10 {
		dst = appendInt(dst, n/10)
	}
	return append(dst, byte('0'+n%10))
}

var (
	// A 64-hex container id, optionally inside a runtime's scope name:
	// docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
	// libpod-<id>.scope, or a bare path segment (cgroupfs driver).
	containerIDRe = regexp.MustCompile(`(?:^|[-/])([0-9a-f]{64})(?:\.scope)?$`)
	// pod<uid> with dashes (cgroupfs) or underscores (systemd slices).
	podUIDRe = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)
)

// parseCgroupPath extracts the container id and pod UID from a cgroup
// path, returning nil for what it does not find.
func parseCgroupPath(p string) (containerID, podUID []byte) {
	if p == "" {
		return nil, nil
	}
	for seg := p; seg != "/" && seg != "." && seg != ""; seg = filepath.Dir(seg) {
		if m := containerIDRe.FindStringSubmatch(filepath.Base(seg)); m != nil {
			containerID = []byte(m[1])
			break
		}
	}
	if m := podUIDRe.FindStringSubmatch(p); m != nil {
		podUID = []byte(strings.ReplaceAll(m[1], "_", "-"))
	}
	return containerID, podUID
}
