package detect

import "strings"

// Syscall classes: besides the total, each process's and host's syscalls
// are summed per class, so that a change in what a process does (a web
// server that starts hammering the file system, a daemon that starts
// opening sockets) shows even when its total hides it. Syscalls outside
// the four classes (futex, epoll and poll waits, clocks, signals
// handling…) are mostly how idle processes wait; they count only in the
// total.
const (
	SeriesSyscallsFile = "syscalls_file" // opens, reads, writes, stats, renames, links…
	SeriesSyscallsNet  = "syscalls_net"  // sockets: connect, accept, send, receive…
	SeriesSyscallsProc = "syscalls_proc" // processes and credentials: clone, exec, kill, ptrace, set*id…
	SeriesSyscallsMem  = "syscalls_mem"  // mappings: mmap, mprotect, brk, memfd_create…
)

// syscallClass maps a syscall's name (as the collector's syscall_counts
// rows carry it) to its class series.
var syscallClass = func() map[string]string {
	m := map[string]string{}
	for series, names := range map[string]string{
		SeriesSyscallsFile: `read write open close stat fstat lstat lseek pread64 pwrite64 readv writev
			access dup dup2 dup3 fcntl flock fsync fdatasync sync syncfs sync_file_range truncate ftruncate
			fallocate getdents getdents64 getcwd chdir fchdir rename renameat renameat2 mkdir mkdirat rmdir
			creat link linkat unlink unlinkat symlink symlinkat readlink readlinkat chmod fchmod fchmodat
			chown fchown lchown fchownat umask openat openat2 mknod mknodat newfstatat statx
			statfs fstatfs faccessat faccessat2 utime utimes futimesat utimensat sendfile splice tee
			copy_file_range preadv pwritev preadv2 pwritev2 close_range name_to_handle_at
			open_by_handle_at getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr
			llistxattr flistxattr removexattr lremovexattr fremovexattr inotify_init inotify_init1
			inotify_add_watch inotify_rm_watch fanotify_init fanotify_mark mount umount2 chroot`,
		SeriesSyscallsNet: `socket socketpair connect accept accept4 bind listen sendto recvfrom sendmsg
			recvmsg sendmmsg recvmmsg shutdown getsockname getpeername setsockopt getsockopt`,
		SeriesSyscallsProc: `clone clone3 fork vfork execve execveat exit exit_group wait4 waitid kill tkill
			tgkill ptrace setuid setgid setreuid setregid setresuid setresgid setfsuid setfsgid setpgid
			setsid capset prctl pidfd_open pidfd_send_signal pidfd_getfd process_vm_readv
			process_vm_writev unshare setns seccomp`,
		SeriesSyscallsMem: `mmap munmap mprotect pkey_mprotect brk mremap madvise mlock mlock2 munlock
			mlockall munlockall msync mincore memfd_create remap_file_pages`,
	} {
		for _, n := range strings.Fields(names) {
			m[n] = series
		}
	}
	return m
}()
