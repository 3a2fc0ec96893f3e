#!/bin/sh
# Runs chrooted in a fresh Debian root (an mmdebstrap customize hook) and turns it into an rpm
# build root: one rpm database for root and builder, dnf set up for build dependencies, and an
# rpm that provides what the Debian packages hold, so that BuildRequires on base tools (gcc,
# make, glibc-static…) resolve the way they do on an rpm distro.
#   $1: the value of dnf's $releasever (the rpm distro's name)
set -eu
mkdir -p /etc/rpm /var/lib/rpm /etc/yum.repos.d
cat > /etc/rpm/macros.perestroika <<'MACROS'
%_dbpath /var/lib/rpm
%debug_package %{nil}
MACROS
# dnf has no system-release package to read $releasever from.
echo "$1" > /etc/dnf/vars/releasever
# Debian enables dnf's `local` plugin, which wants a repository of its own.
printf '[main]\nenabled=0\n' > /etc/dnf/plugins/local.conf

top=$(mktemp -d)
mkdir -p "$top/SPECS"
spec="$top/SPECS/base.spec"
{
  echo "Name: perestroika-debian-base"
  echo "Version: 1"
  echo "Release: 1"
  echo "Summary: What the Debian packages of this build root provide"
  echo "License: none"
  echo "BuildArch: noarch"
  # Every Debian package, by its own name and version.
  dpkg-query -W -f='${Package} ${Version}\n' | while read -r name version; do
    echo "Provides: $name = $version"
  done
  # The usual rpm names of base tools and libraries that Debian names otherwise.
  for alias in gcc-c++ glibc glibc-devel glibc-static glibc-headers redhat-rpm-config \
      rpm-build /bin/sh /usr/bin/sh /bin/bash /usr/bin/bash /usr/bin/env /usr/bin/perl; do
    echo "Provides: $alias"
  done
  # Shared libraries by their sonames, as rpm's own dependency generator names them.
  find /lib /usr/lib -name '*.so*' -type f 2>/dev/null | /usr/lib/rpm/elfdeps --provides \
    | sort -u | sed 's/^/Provides: /'
  echo
  echo "%description"
  echo "Virtual package: the Debian packages of this root, as rpm sees them."
  echo "%files"
} > "$spec"
rpmbuild --quiet -bb --define "_topdir $top" --define "_buildhost perestroika" "$spec"
# Debian's rpm warns that dpkg owns the system; this database is the build root's own.
rpm -i --nodeps "$top"/RPMS/noarch/*.rpm 2>&1 | grep -v -e 'RPM should not be used' -e 'assuming you know' || true
rm -rf "$top"
echo "rpm database: $(rpm -q --provides perestroika-debian-base | wc -l) provides"
