//go:build !amd64

package collector

// syscallNames is empty off x86-64: the sys probe only knows x86-64
// syscall numbers, rows then carry the number alone.
var syscallNames = [...]string{}
