#!/bin/sh
# Root, with the package cache relay open (the only network a build has). Installs what the
# build still needs with dnf builddep, from the base the image names plus the farm's own rpm
# repositories.
#   $1: distro   $2: package cache URL, used as dnf's proxy ("" for none)
#   then pairs: a public tree, mounted read-only, and one of its rpm repositories (the
#   release's, `<distro>-proposed` in maintenance, a topic's review repository)
set -eu
distro=$1 proxy=$2
shift 2
# The relay's port is new each round.
sed -i '/^proxy=/d' /etc/dnf/dnf.conf
if [ -n "$proxy" ]; then
  echo "proxy=$proxy" >> /etc/dnf/dnf.conf
fi
arch=$(rpm --eval '%{_arch}')
mkdir -p /etc/yum.repos.d
# Written afresh each round (dynamic build requirements run this more than once).
: > /etc/yum.repos.d/perestroika-release.repo
n=0
while [ $# -ge 2 ]; do
  n=$((n + 1))
  cat >> /etc/yum.repos.d/perestroika-release.repo <<REPO
[perestroika-$n]
name=The farm's own packages: $2
baseurl=file://$1/rpm/$2/$arch
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://$1/KEY.asc

REPO
  shift 2
done
# Dynamic build requirements, when rpmbuild -br found some; else the source rpm's own.
wanted=$(find /build/work/SRPMS -name '*.buildreqs.nosrc.rpm' | head -n 1)
[ -n "$wanted" ] || wanted=$(cat /build/work/srpm.path)
echo "[perestroika] installing the build dependencies of ${wanted##*/} (distro $distro)"
rc=0
dnf -y --setopt=install_weak_deps=False builddep "$wanted" || rc=$?
# The relay closes now: nothing of the build may think it has a proxy.
sed -i '/^proxy=/d' /etc/dnf/dnf.conf
exit $rc
