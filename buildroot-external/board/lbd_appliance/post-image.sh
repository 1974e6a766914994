#!/bin/sh
# post-image.sh BINARIES_DIR: the disk image and its conversions, for both
# builds. BINARIES_DIR holds rootfs.squashfs, GRUB's boot.img and grub.img
# (i386-pc core) and efi-part/EFI/BOOT/bootx64.efi (Buildroot's grub2
# package makes these; scripts/build-image makes the same with Debian's GRUB).
# Writes lbd-appliance.img (raw), .qcow2, .vmdk (streamOptimized), .vhdx
# and .ova.
set -eu
images=$(cd "$1" && pwd)
board=$(cd "$(dirname "$0")" && pwd)
name=lbd-appliance
export PATH="${HOST_DIR:+$HOST_DIR/bin:$HOST_DIR/sbin:}$PATH:/usr/sbin:/sbin"

# GRUB for BIOS: boot.img in the MBR jumps to core.img at LBA 2048 (the bios
# partition of genimage.cfg), and core.img's first sector loads the rest of
# itself from LBA 2049 on.
core_lba=2048
python3 - "$images" "$core_lba" <<'PY'
import struct, sys
d, lba = sys.argv[1], int(sys.argv[2])
boot = bytearray(open(f"{d}/boot.img", "rb").read()[:440])
struct.pack_into("<Q", boot, 0x5C, lba)          # boot.img: where core.img starts
open(f"{d}/boot-mbr.img", "wb").write(boot)
core = bytearray(open(f"{d}/grub.img", "rb").read())
sectors = (len(core) + 511) // 512
if sectors > 2048:
    sys.exit(f"post-image: core.img is {sectors} sectors, more than the 1 MiB bios partition")
# diskboot.img's block list, at the end of core.img's first sector:
# start (u64), length in sectors (u16), load segment (u16).
struct.pack_into("<QH", core, 0x200 - 12, lba + 1, sectors - 1)
open(f"{d}/grub.img", "wb").write(bytes(core))
PY

# The EFI system partition: GRUB for UEFI and one grub.cfg for both GRUBs
# (UEFI's looks in /EFI/BOOT, BIOS's in /boot/grub), and grubenv (slot=A).
efi=$images/efi-part
mkdir -p "$efi/EFI/BOOT" "$efi/boot/grub"
[ -e "$efi/EFI/BOOT/bootx64.efi" ] || { echo "post-image: no $efi/EFI/BOOT/bootx64.efi" >&2; exit 1; }
cp "$board/grub.cfg" "$efi/EFI/BOOT/grub.cfg"
cp "$board/grub.cfg" "$efi/boot/grub/grub.cfg"
python3 - "$efi/grubenv" <<'PY'
import sys
# GRUB's environment block: a 1024-byte file, '#'-padded.
head = "# GRUB Environment Block\nslot=A\n"
open(sys.argv[1], "w").write(head + "#" * (1024 - len(head)))
PY

# genimage takes the /config partition's (empty) content from the root tree.
genroot=$(mktemp -d)
gentmp=$(mktemp -d)
trap 'rm -rf "$genroot" "$gentmp"' EXIT
mkdir -p "$genroot/config"
rm -rf "$gentmp" && mkdir -p "$gentmp"
if ! genimage --rootpath "$genroot" --tmppath "$gentmp/t" --inputpath "$images" --outputpath "$images" \
    --config "$board/genimage.cfg" > "$gentmp/log" 2>&1; then
    cat "$gentmp/log" >&2
    exit 1
fi

raw=$images/$name.img
size=$(stat -c %s "$raw")
if [ $((size % 1048576)) -ne 0 ]; then
    echo "post-image: $raw is $size bytes, not whole MiB" >&2
    exit 1
fi
qemu-img convert -f raw -O qcow2 -c "$raw" "$images/$name.qcow2"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "$images/$name.vmdk"
qemu-img convert -f raw -O vhdx -o subformat=dynamic "$raw" "$images/$name.vhdx"
"$board/mkova" "$images/$name.vmdk" "$size" "$images/$name.ova"
