#!/bin/sh
# Root, with the package cache relay open (the only network a build has). Installs the build dependencies of /build/work/tree from the pinned base
# (whose package lists were baked into the image) plus the farm's own repositories.
#   $1: distro   $2: package cache URL for apt ("" for none)
#   then pairs: a public tree, mounted read-only, and one of its suites (the release's suite,
#   `proposed` in maintenance, a topic's review repository)
set -eu
distro=$1 proxy=$2
shift 2
export DEBIAN_FRONTEND=noninteractive
# The relay's port is new each time; without one there is no network at all.
rm -f /etc/apt/apt.conf.d/90perestroika-cache
if [ -n "$proxy" ]; then
  printf 'Acquire::http::Proxy "%s";\n' "$proxy" > /etc/apt/apt.conf.d/90perestroika-cache
fi
list=/etc/apt/sources.list.d/perestroika-release.list
: > "$list"
while [ $# -ge 2 ]; do
  echo "deb [signed-by=$1/KEY.asc] file:$1/deb $2 main restricted" >> "$list"
  shift 2
done
if [ -s "$list" ]; then
  echo "[perestroika] reading the farm's repositories:"
  sed 's/^/  /' "$list"
  # Only the farm's own indexes are refreshed: the base stays as the image pinned it.
  apt-get update -q \
    -o Dir::Etc::SourceList="$list" \
    -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0
fi
echo "[perestroika] installing build dependencies (distro $distro)"
rc=0
apt-get build-dep -q -y --no-install-recommends /build/work/tree || rc=$?
# The relay closes now: nothing of the build may think it has a proxy.
rm -f /etc/apt/apt.conf.d/90perestroika-cache
exit $rc
