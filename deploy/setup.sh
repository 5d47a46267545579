#!/usr/bin/env bash
# setup.sh installs what Vigil needs on this machine and skips what is there.
# Idempotent: every step says what it checked and what it did.
#   deploy/setup.sh run    what `make run` needs: Go, the ClickHouse engine
#   deploy/setup.sh test   plus what the tests need: Chromium, chromedriver, iproute2
#   deploy/setup.sh gen    plus clang and bpftool, for `make generate`
set -euo pipefail

CHDB_VERSION="${CHDB_VERSION:-26.7.3-stable.1}"
CHDB_DIR="${VIGIL_CHDB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/chdb}"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
	local missing=()
	for pkg in "$@"; do
		if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
			say "$pkg: installed"
		else
			missing+=("$pkg")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "need Debian packages ${missing[*]} but apt-get is not here; install them by hand"
	[ "$(id -u)" -eq 0 ] || die "need Debian packages ${missing[*]}: run as root, or install them first"
	if [ $apt_updated -eq 0 ]; then
		say "apt-get update"
		apt-get update -qq || die "apt-get update failed"
		apt_updated=1
	fi
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
		|| die "apt-get install ${missing[*]} failed"
}

need_go() {
	command -v go >/dev/null || die "Go is not on PATH: install Go 1.26 or newer (https://go.dev/dl)"
	say "go: $(go env GOVERSION)"
	command -v gcc >/dev/null || apt_install gcc libc6-dev
}

# ensure_chdb fetches libchdb.so (ClickHouse as a library) from the npm
# registry into the cache, unless an official clickhouse binary is on PATH or
# VIGIL_CHDB_LIB points at a library.
ensure_chdb() {
	if [ -n "${VIGIL_CHDB_LIB:-}" ]; then
		[ -f "$VIGIL_CHDB_LIB" ] || die "VIGIL_CHDB_LIB=$VIGIL_CHDB_LIB: no such file"
		say "ClickHouse engine: $VIGIL_CHDB_LIB (VIGIL_CHDB_LIB)"
		return
	fi
	if [ -f "$CHDB_DIR/libchdb.so" ] && [ "$(cat "$CHDB_DIR/VERSION" 2>/dev/null)" = "$CHDB_VERSION" ]; then
		say "ClickHouse engine: $CHDB_DIR/libchdb.so ($CHDB_VERSION)"
		return
	fi
	command -v npm >/dev/null || die "npm is needed to fetch the ClickHouse engine (@chdb/lib-linux-x64-gnu): install Node.js and npm, or put an official clickhouse binary on PATH"
	say "fetching the ClickHouse engine: npm package @chdb/lib-linux-x64-gnu@$CHDB_VERSION (about 170 MB) into $CHDB_DIR"
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	(cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$CHDB_VERSION" >/dev/null 2>"$tmp/npm.err") \
		|| die "npm pack @chdb/lib-linux-x64-gnu@$CHDB_VERSION failed: $(tail -3 "$tmp/npm.err")"
	tar -xzf "$tmp"/chdb-lib-linux-x64-gnu-*.tgz -C "$tmp" package/libchdb.so \
		|| die "the npm package has no package/libchdb.so"
	mkdir -p "$CHDB_DIR"
	mv "$tmp/package/libchdb.so" "$CHDB_DIR/libchdb.so.tmp"
	mv "$CHDB_DIR/libchdb.so.tmp" "$CHDB_DIR/libchdb.so"
	echo "$CHDB_VERSION" > "$CHDB_DIR/VERSION"
	say "ClickHouse engine: $CHDB_DIR/libchdb.so ($CHDB_VERSION)"
}

check_kernel() {
	[ -r /sys/kernel/btf/vmlinux ] || say "warning: /sys/kernel/btf/vmlinux is missing: the probes need a kernel with BTF"
	[ "$(id -u)" -eq 0 ] || say "warning: not root: the probes need root (or CAP_BPF+CAP_PERFMON)"
}

what="${1:-run}"
case "$what" in
run)
	need_go; ensure_chdb; check_kernel ;;
test)
	need_go; ensure_chdb; check_kernel
	apt_install chromium chromium-driver iproute2 ;;
gen)
	need_go
	apt_install clang llvm bpftool libbpf-dev ;;
*)
	die "usage: setup.sh run|test|gen" ;;
esac
say "ready ($what)"
