#!/bin/sh
# Root, network on. Installs what the build still needs with dnf builddep, from the base the
# image names plus the release's own rpm repository.
#   $1: distro   $2: the release's public tree, mounted read-only ("" when it has no repository)
#   $3: package cache URL, used as dnf's proxy ("" for none)
set -eu
distro=$1 release=$2 proxy=$3
if [ -n "$proxy" ] && ! grep -q '^proxy=' /etc/dnf/dnf.conf; then
  echo "proxy=$proxy" >> /etc/dnf/dnf.conf
fi
if [ -n "$release" ]; then
  arch=$(rpm --eval '%{_arch}')
  mkdir -p /etc/yum.repos.d
  cat > /etc/yum.repos.d/perestroika-release.repo <<REPO
[perestroika-release]
name=The release's own packages
baseurl=file://$release/rpm/$distro/$arch
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://$release/KEY.asc
REPO
fi
# Dynamic build requirements, when rpmbuild -br found some; else the source rpm's own.
wanted=$(find /build/work/SRPMS -name '*.buildreqs.nosrc.rpm' | head -n 1)
[ -n "$wanted" ] || wanted=$(cat /build/work/srpm.path)
echo "[perestroika] installing the build dependencies of ${wanted##*/}"
exec dnf -y --setopt=install_weak_deps=False builddep "$wanted"
