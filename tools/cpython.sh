#!/usr/bin/env bash
# Build CPython from Debian's source package, or reuse an earlier build, and
# print the interpreter's path on stdout.  All build output goes to a log file.
#
#   tools/cpython.sh 3.13            # -> ~/.cache/linalloc-cpython/3.13/bin/python3.13
#
# The build lives in ${LINALLOC_CPYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/linalloc-cpython}
# and is reused by later runs on the same machine.  Concurrent runs wait on a lock.
# Exit status: 0 done, 2 bad usage, 3 the source package could not be downloaded,
# 1 any other failure (the log's tail is printed on stderr).
set -euo pipefail

usage() { echo "usage: $0 VERSION   (supported: 3.13)" >&2; exit 2; }
[ $# -eq 1 ] || usage
version=$1
case $version in
    3.13) debian_version=3.13.5-2+deb13u5; suite=trixie; orig=python3.13_3.13.5.orig.tar.xz ;;
    *) usage ;;
esac

cache=${LINALLOC_CPYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/linalloc-cpython}
prefix=$cache/$version
python=$prefix/bin/python$version
marker=$prefix/.linalloc-complete
log=$cache/build-$version.log
mkdir -p "$cache"

# One build at a time; a second caller waits, then reuses the first one's result.
exec 9>"$cache/$version.lock"
flock 9

if [ -f "$marker" ] && "$python" -c 'import ctypes, ssl, zlib, venv' 2>/dev/null; then
    echo "$python"
    exit 0
fi

fail() {
    echo "cpython.sh: $1 (log: $log)" >&2
    tail -n 25 "$log" >&2 || true
    exit "${2:-1}"
}

: >"$log"
echo "cpython.sh: building CPython $version ($debian_version) into $prefix; log: $log" >&2

# Build dependencies (Debian package names), installed only when missing.
deps="build-essential xz-utils pkg-config libffi-dev zlib1g-dev libssl-dev libbz2-dev
      liblzma-dev libsqlite3-dev libreadline-dev libncurses-dev uuid-dev libexpat1-dev"
missing=""
for p in $deps; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "cpython.sh: installing build dependencies:$missing" >&2
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $missing; } >>"$log" 2>&1 \
        || fail "could not install the build dependencies:$missing"
fi

# A private apt configuration holding only a deb-src line; the system's sources are untouched.
apt_dir=$cache/apt
src_dir=$cache/src-$version
rm -rf "$src_dir"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" "$src_dir"
echo "deb-src http://deb.debian.org/debian $suite main" >"$apt_dir/sources.list"
apt_opts=(
    -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
    -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "APT::Sandbox::User=root"
)
{
    apt-get "${apt_opts[@]}" update &&
    (cd "$src_dir" && apt-get "${apt_opts[@]}" source --download-only "python$version=$debian_version")
} >>"$log" 2>&1 || fail "could not download Debian's source package python$version=$debian_version" 3
[ -f "$src_dir/$orig" ] || fail "the source package has no $orig" 3

tar -xJf "$src_dir/$orig" -C "$src_dir" >>"$log" 2>&1 || fail "could not unpack $orig"
build=$(find "$src_dir" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -n 1)
[ -n "$build" ] || fail "$orig did not contain a Python-* directory"

rm -rf "$prefix"
(
    cd "$build" &&
    ./configure --prefix="$prefix" --without-ensurepip &&
    make -j"$(nproc)" &&
    make install
) >>"$log" 2>&1 || fail "the build failed"
"$python" -m ensurepip >>"$log" 2>&1 || fail "ensurepip failed"
"$python" -c 'import ctypes, ssl, zlib, venv' >>"$log" 2>&1 \
    || fail "the built interpreter lacks ctypes, ssl, zlib or venv"
rm -rf "$src_dir"
touch "$marker"
echo "$python"
