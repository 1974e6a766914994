#!/bin/sh
# post-build.sh TARGET_DIR: the last touches to the root tree, for both builds
# (Buildroot calls it with its target/; scripts/build-image with its staging
# tree): mount points, the links that make the read-only root work, the
# release file, the kernel's name and the initramfs.
set -eu
target=$1
board=$(cd "$(dirname "$0")" && pwd)
version=${LBD_VERSION:-$(cat "$board/../../VERSION" 2>/dev/null || echo dev)}

cd "$target"
mkdir -p proc sys dev run tmp var config etc/ssl root boot
chmod 700 root
# Files the box writes at run time live in RAM (/run) or on /config.
for link in etc/resolv.conf:../run/resolv.conf etc/keepalived:../run/keepalived \
    etc/issue:../run/issue etc/mtab:../proc/self/mounts; do
    path=${link%%:*}
    rm -rf "$path"
    ln -s "${link#*:}" "$path"
done
# Buildroot's own init scripts for what ours do (syslog, network).
rm -f etc/init.d/S01syslogd etc/init.d/S02klogd etc/init.d/S40network etc/init.d/S01logging
cat > etc/os-release <<OS
NAME="lbd appliance"
ID=lbd
VERSION_ID=$version
PRETTY_NAME="lbd appliance $version"
OS
# Buildroot installs the kernel as bzImage; GRUB boots /boot/vmlinuz.
if [ -e boot/bzImage ] && [ ! -e boot/vmlinuz ]; then
    mv boot/bzImage boot/vmlinuz
fi
"$board/mkinitramfs" "$target" "$target/boot/initrd.img"
