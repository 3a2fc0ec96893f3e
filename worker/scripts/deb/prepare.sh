#!/bin/sh
# Builder, no network. Lays out /build/work: the source tree in tree/ and the upstream files
# beside it, then checks that debian/control parses.
#   $1: "tree" (in/tree plus upstream tarballs) or "dsc" (in/ holds a .dsc and its files)
#   $2: with "dsc", the .dsc file name
set -eu

case "$1" in
  tree)
    mv /build/in/tree /build/work/tree
    find /build/in -maxdepth 1 -type f -exec mv {} /build/work/ \;
    ;;
  dsc)
    dpkg-source --no-check --no-copy -x "/build/in/$2" /build/work/tree
    mv /build/in/* /build/work/
    ;;
  *) echo "prepare: unknown layout $1" >&2; exit 2 ;;
esac
cd /build/work/tree
echo "[perestroika] checking debian/control"
perl -MDpkg::Control::Info -e 'Dpkg::Control::Info->new("debian/control")' 2>&1 || {
  echo "[perestroika] debian/control does not parse" >&2
  exit 3
}
