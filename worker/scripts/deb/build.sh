#!/bin/sh
# Builder, network off. Runs dpkg-buildpackage in /build/work/tree.
#   $1: dpkg-buildpackage build type option (-F full, -b binary only)
set -eu
cd /build/work/tree
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -STimestamp)
DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}"
export SOURCE_DATE_EPOCH DEB_BUILD_OPTIONS
echo "[perestroika] dpkg-buildpackage $1 (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
exec dpkg-buildpackage -us -uc "$1"
