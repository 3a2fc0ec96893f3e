#!/bin/sh
# Root, network on. Installs the build dependencies of /build/work/tree from the pinned base
# (whose package lists were baked into the image) plus the release's own repository.
#   $1: distro   $2: the release's public tree, mounted read-only ("" when it has no repository)
#   $3: package cache URL for apt ("" for none)
set -eu
distro=$1 release=$2 proxy=$3
export DEBIAN_FRONTEND=noninteractive
if [ -n "$proxy" ]; then
  printf 'Acquire::http::Proxy "%s";\n' "$proxy" > /etc/apt/apt.conf.d/90perestroika-cache
fi
if [ -n "$release" ]; then
  echo "deb [signed-by=$release/KEY.asc] file:$release/deb $distro main" \
    > /etc/apt/sources.list.d/perestroika-release.list
  echo "[perestroika] reading the release repository"
  # Only the release's own index is refreshed: the base stays as the image pinned it.
  apt-get update -q \
    -o Dir::Etc::SourceList=/etc/apt/sources.list.d/perestroika-release.list \
    -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0
fi
echo "[perestroika] installing build dependencies"
apt-get build-dep -q -y --no-install-recommends /build/work/tree
