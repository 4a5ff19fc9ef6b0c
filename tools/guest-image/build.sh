#!/usr/bin/env bash
# Nubo tiny guest image builder.
#
# Builds a small CirrOS-like raw disk image from Debian packages only: an MBR
# (syslinux) plus one FAT16 partition holding syslinux, Debian's signed kernel
# and an initramfs (busybox-static, dropbear, a few kernel modules and the
# scripts under rootfs/). The guest runs entirely from the initramfs.
# No root, mounts or loop devices are needed for the build itself; root is
# only needed to apt-get install missing build packages.
#
# Usage: tools/guest-image/build.sh [OUT]    (default: tools/guest-image/out/tiny.raw)
# Environment: KVER (kernel version, default: the one linux-image-amd64 pulls in),
#              SOURCE_DATE_EPOCH (timestamps inside the image; fixed default).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/out/tiny.raw}
# Fixed timestamps, volume ids and disk id make the image byte-reproducible
# for the same package versions and sources.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600} # 2026-01-01T00:00:00Z
export SOURCE_DATE_EPOCH
DISK_ID=0x4e55424f  # "NUBO"

PKGS=(busybox-static dropbear-bin linux-image-amd64 syslinux syslinux-common
	mtools dosfstools fdisk cpio gzip kmod openssh-sftp-server)

T0=$(date +%s.%N)
log() { printf 'build: %s\n' "$*" >&2; }
die() { printf 'build: ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- packages
pkg_installed() {
	dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

apt_update() {
	local i
	for i in 1 2 3 4 5 6; do
		apt-get -q update -o DPkg::Lock::Timeout=300 && return 0
		log "apt-get update failed (try $i), retrying in 10 s"
		sleep 10
	done
	return 1
}

ensure_packages() {
	local missing=() p
	for p in "${PKGS[@]}"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	[[ $(id -u) == 0 ]] || die "missing packages: ${missing[*]} (run as root, or apt-get install them)"
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	if ! apt-get "${opts[@]}" install "${missing[@]}"; then
		apt_update || die "apt-get update failed"
		apt-get "${opts[@]}" install "${missing[@]}" || die "apt-get install failed"
	fi
	for p in "${missing[@]}"; do
		pkg_installed "$p" || die "package $p still not installed"
	done
}

ensure_packages
T_PKG=$(elapsed)

# ---------------------------------------------------------------- inputs
if [[ -z ${KVER:-} ]]; then
	KVER=$(dpkg-query -W -f='${Depends}' linux-image-amd64 |
		sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
fi
[[ -n $KVER ]] || die "cannot tell the kernel version from linux-image-amd64"
VMLINUZ=/boot/vmlinuz-$KVER
[[ -r $VMLINUZ ]] || die "$VMLINUZ missing"
[[ -d /lib/modules/$KVER ]] || die "/lib/modules/$KVER missing"
BUSYBOX=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -n1)
[[ -x $BUSYBOX ]] || die "busybox binary not found"
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
[[ -r $MBR_BIN ]] || die "$MBR_BIN missing"
SFTP_SERVER=/usr/lib/openssh/sftp-server

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nubo-guest-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
R=$WORK/rootfs

# ---------------------------------------------------------------- 1. tree + busybox
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/lib,lib/modules/nubo,lib/x86_64-linux-gnu,lib64} \
	"$R"/{etc,root,proc,sys,dev,run,tmp,var/log,mnt}
chmod 700 "$R/root"
chmod 1777 "$R/tmp"
ln -s ../run "$R/var/run"
install -m 755 "$BUSYBOX" "$R/bin/busybox"
"$R/bin/busybox" --list-full | while read -r p; do
	[[ -e $R/$p || -L $R/$p ]] || ln -s /bin/busybox "$R/$p"
done

# ---------------------------------------------------------------- 2. dropbear + libraries
copy_libs() { # copy the shared libraries an ELF binary needs, to the same paths
	local lib
	for lib in $(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		[[ -e $R$lib ]] && continue
		mkdir -p "$R$(dirname "$lib")"
		cp -L "$lib" "$R$lib"
	done
}
install -m 755 /usr/sbin/dropbear "$R/usr/sbin/dropbear"
install -m 755 /usr/bin/dropbearkey "$R/usr/bin/dropbearkey"
# sftp-server at the path compiled into Debian's dropbear (makes OpenSSH scp work)
install -m 755 "$SFTP_SERVER" "$R/usr/lib/sftp-server"
for b in /usr/sbin/dropbear /usr/bin/dropbearkey "$SFTP_SERVER"; do
	copy_libs "$b"
done
[[ -e $R/lib64/ld-linux-x86-64.so.2 ]] || die "dynamic loader not copied"

# ---------------------------------------------------------------- 3. kernel modules
declare -A SEEN=()
MODFILES=()
add_module() { # add a module after its dependencies
	local m=${1//-/_} fn deps d
	[[ -n ${SEEN[$m]:-} ]] && return 0
	SEEN[$m]=1
	fn=$(modinfo -k "$KVER" -F filename "$m" 2>/dev/null) || die "module $m not found for $KVER"
	[[ $fn == "(builtin)" || -z $fn ]] && return 0
	deps=$(modinfo -k "$KVER" -F depends "$m")
	for d in ${deps//,/ }; do
		add_module "$d"
	done
	MODFILES+=("$fn")
}
while read -r m _; do
	[[ -z $m || $m == \#* ]] && continue
	add_module "$m"
done < "$HERE/modules.list"
: > "$R/lib/modules/nubo/order"
for fn in "${MODFILES[@]}"; do
	base=${fn##*/}
	# keep the Debian signature: copy as is (decompress only, never strip)
	case $base in
	*.ko) cp "$fn" "$R/lib/modules/nubo/$base" ;;
	*.ko.xz) base=${base%.xz}; xz -dc "$fn" > "$R/lib/modules/nubo/$base" ;;
	*.ko.zst) base=${base%.zst}; zstd -qdc "$fn" > "$R/lib/modules/nubo/$base" ;;
	*.ko.gz) base=${base%.gz}; gzip -dc "$fn" > "$R/lib/modules/nubo/$base" ;;
	*) die "unknown module file type: $fn" ;;
	esac
	echo "$base" >> "$R/lib/modules/nubo/order"
done

# ---------------------------------------------------------------- 4-9. scripts and config
cp -R "$HERE/rootfs/." "$R/"
find "$R/etc" "$R/usr/lib/nubo" "$R/usr/share/udhcpc" -type f -exec chmod 644 {} +
chmod 755 "$R/init" "$R/etc/init.d/rcS" "$R/etc/init.d/rcK" \
	"$R/usr/share/udhcpc/default.script" "$R/etc/acpi/PWRF/00000080"
ver() { dpkg-query -W -f='${Version}' "$1"; }
cat > "$R/etc/nubo-guest-release" <<EOF
NAME="Nubo tiny guest"
KERNEL=$KVER
BUSYBOX=$(ver busybox-static)
DROPBEAR=$(ver dropbear-bin)
BUILD_EPOCH=$SOURCE_DATE_EPOCH
EOF
cat > "$R/etc/os-release" <<'EOF'
NAME="Nubo tiny guest"
ID=nubo-tiny
PRETTY_NAME="Nubo tiny guest (busybox + dropbear, Debian kernel)"
EOF

# ---------------------------------------------------------------- 10. initramfs
# -R 0:0 makes everything root-owned without root. gzip -6: -9 took 2.3 s longer
# to save 26 KB; the kernel unpacks gzip in about 0.2 s under TCG (xz is slower).
find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
	gzip -6n > "$WORK/initrd.img"
CPIO_SIZE=$(du -sb "$R" | cut -f1)

# ---------------------------------------------------------------- 11. FAT boot partition
cp "$VMLINUZ" "$WORK/vmlinuz"
cat > "$WORK/syslinux.cfg" <<'EOF'
SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT nubo
LABEL nubo
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND console=tty0 console=ttyS0,115200n8 quiet panic=10
EOF
touch -d "@$SOURCE_DATE_EPOCH" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/syslinux.cfg"
KSIZE=$(stat -c %s "$WORK/vmlinuz")
ISIZE=$(stat -c %s "$WORK/initrd.img")
MIB=$(((KSIZE + ISIZE + 1048575) / 1048576 + 2))
mkfs.vfat -F 16 -n NUBOBOOT -h 2048 --invariant -C "$WORK/part.img" $((MIB * 1024)) > /dev/null
syslinux --install "$WORK/part.img"
mcopy -m -i "$WORK/part.img" "$WORK/vmlinuz" ::/vmlinuz
mcopy -m -i "$WORK/part.img" "$WORK/initrd.img" ::/initrd.img
mcopy -m -i "$WORK/part.img" "$WORK/syslinux.cfg" ::/syslinux.cfg

# ---------------------------------------------------------------- 12. whole disk
DISK=$WORK/disk.raw
truncate -s $(((MIB + 1) * 1048576)) "$DISK"
printf 'label: dos\nlabel-id: %s\nstart=2048, type=e, bootable\n' "$DISK_ID" | sfdisk -q "$DISK"
dd if="$MBR_BIN" of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/part.img" of="$DISK" bs=512 seek=2048 conv=notrunc status=none

mkdir -p "$(dirname "$OUT")"
mv -f "$DISK" "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"

SIZE=$(stat -c %s "$OUT")
((SIZE <= 40 * 1000 * 1000)) || die "image is $SIZE bytes, over the 40 MB budget"
log "kernel $KVER ($KSIZE B), initrd $ISIZE B gzip ($CPIO_SIZE B unpacked), ${#MODFILES[@]} modules"
log "image $OUT: $SIZE B ($((SIZE / 1048576)) MiB), sha256 $(sha256sum "$OUT" | cut -d' ' -f1)"
log "done in $(elapsed) s (package check/install: $T_PKG s)"
