package collector

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestParseCgroupPath(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const uid = "1c3b7a5e-2f4d-4e6f-8a9b-0c1d2e3f4a5b"
	for _, tc := range []struct{ path, container, pod string }{
		{"/system.slice/docker-" + id + ".scope", id, ""},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1c3b7a5e_2f4d_4e6f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-" + id + ".scope", id, uid},
		{"/kubepods/besteffort/pod" + uid + "/" + id, id, uid},
		{"/docker/" + id, id, ""},
		{"/user.slice/user-1000.slice/session-3.scope", "", ""},
		{"", "", ""},
	} {
		c, p := parseCgroupPath(tc.path)
		if string(c) != tc.container || string(p) != tc.pod {
			t.Errorf("parseCgroupPath(%q) = %q, %q; want %q, %q", tc.path, c, p, tc.container, tc.pod)
		}
	}
}

func TestCgroupResolver(t *testing.T) {
	mnt := cgroup2Mount()
	if mnt == "" || os.Geteuid() != 0 {
		t.Skip("needs a cgroup2 mount and root")
	}
	dir := filepath.Join(mnt, "vigil-test-docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	defer os.Remove(dir)
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	r := newCgroupResolver()
	defer r.close()
	info := r.lookup(st.Ino)
	if filepath.Base(info.path) != filepath.Base(dir) || string(info.containerID) != "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("lookup = %+v", info)
	}
}
