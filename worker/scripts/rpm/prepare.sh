#!/bin/sh
# Builder, no network. Lays out the rpm build in /build/work (rpmbuild's _topdir): the spec and
# the files beside it in SOURCES/ (or a source rpm unpacked there), Source0 made from the code
# when the packaging does not hold it, then the source rpm with `rpmbuild -bs`.
#   $1: "tree" (in/SOURCES/, in/code.tar) or "srpm" (in/<file>)
#   $2: the spec's file name in in/SOURCES, or the source rpm's file name
#   $3: the farm's release for %{perestroika_release} and %autorelease; "" for local inputs:
#       a source rpm's own release, else 0 (below any release the farm gives)
# Exit 3: the spec is at fault.
set -eu
layout=$1 file=$2 release=$3
top=/build/work
mkdir -p $top/SOURCES $top/SPECS $top/SRPMS $top/RPMS $top/BUILD
if [ -z "$release" ]; then
  case "$layout" in
    srpm) release=$(rpm -qp --qf '%{RELEASE}' "/build/in/$file") ;;
    *) release=0 ;;
  esac
fi
{
  echo "%_topdir $top"
  echo "%_buildhost perestroika"
  echo "%use_source_date_epoch_as_buildtime 1"
  echo "%clamp_mtime_to_source_date_epoch 1"
  echo "%source_date_epoch_from_changelog 1"
  echo "%perestroika_release $release"
  echo "%autorelease $release"
} > "$HOME/.rpmmacros"

case "$layout" in
  tree)
    cp -a /build/in/SOURCES/. $top/SOURCES/
    spec=$top/SOURCES/$file
    srpm= ;;
  srpm)
    rpm -i "/build/in/$file" 2>&1 | grep -v -e 'should not be used' -e 'assuming you know' -e 'does not exist - using' || true
    spec=$(find $top/SPECS -name '*.spec' | head -n 1)
    [ -n "$spec" ] || { echo "[perestroika] $file holds no spec" >&2; exit 3; }
    srpm=/build/in/$file ;;
  *) echo "prepare: unknown layout $layout" >&2; exit 2 ;;
esac
echo "$spec" > $top/spec.path

echo "[perestroika] parsing ${spec##*/}"
parsed=$(rpmspec -P "$spec") || { echo "[perestroika] the spec does not parse" >&2; exit 3; }
source0=$(printf '%s\n' "$parsed" | awk 'tolower($1) ~ /^source0?:$/ { print $2; exit }')
base=${source0##*/}
if [ -n "$base" ] && [ ! -e "$top/SOURCES/$base" ] && [ -f /build/in/code.tar ]; then
  case "$base" in
    *.tar.gz) dir=${base%.tar.gz} compress="gzip -n -9" ;;
    *.tgz) dir=${base%.tgz} compress="gzip -n -9" ;;
    *.tar.xz) dir=${base%.tar.xz} compress="xz -T1" ;;
    *.tar.bz2) dir=${base%.tar.bz2} compress="bzip2 -9" ;;
    *.tar) dir=${base%.tar} compress=cat ;;
    *) echo "[perestroika] Source0 $base is not a tarball the farm can make from the code; add it beside the spec" >&2
       exit 3 ;;
  esac
  echo "[perestroika] making $base from the code (top directory $dir/)"
  mkdir -p "/build/src/$dir"
  tar -x -f /build/in/code.tar -C "/build/src/$dir"
  (cd /build/src && tar --sort=name --mtime="@${SOURCE_DATE_EPOCH:-0}" --owner=0 --group=0 \
      --numeric-owner --format=gnu -c -f - "$dir") | $compress > "$top/SOURCES/$base"
fi

if [ -z "$srpm" ]; then
  echo "[perestroika] rpmbuild -bs"
  rpmbuild -bs "$spec" || { echo "[perestroika] rpmbuild -bs failed" >&2; exit 3; }
  srpm=$(find $top/SRPMS -name '*.src.rpm' | head -n 1)
fi
echo "$srpm" > $top/srpm.path
rpm -qp --qf '%{NAME} %{EVR}\n' "$srpm" > $top/nevr
echo "[perestroika] source rpm $(cat $top/nevr)"
