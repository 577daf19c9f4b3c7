#!/usr/bin/env bash
# Run the desktop bundle on a machine with nothing installed: a minimal Debian 12 root made
# by debootstrap (no Python, no X, no fonts, no compilers), entered with chroot.
#
# Usage: sudo packaging/clean-machine.sh [BUNDLE_DIR] [ROOT]
#        (defaults: dist/medviewer and build/clean-root; the root is made once and reused)
#
# 1. In the bare root: the command-line steps that need no Qt (demo-data, index, info) must
#    work, and `about` must name what Qt lacks (it needs the system's libGL, libEGL, libxcb).
# 2. Installs RUNTIME_PACKAGES (the minimum documented in packaging/README.md) in the root.
# 3. Runs, as a user would after unpacking the archive: --version, about (models and every
#    DICOM decoder), demo-data, index, info, screenshot, infer (radiograph classifier; CT
#    segmentation with the PDF report, DICOM SEG and SR), desktop install, and a start-up to
#    the painted main window (Qt offscreen).
# 4. Lists the shared libraries Qt's desktop platform plugins (xcb, wayland) still miss there:
#    what a desktop session provides.
# Exits 1 if any step failed.
set -euo pipefail

BUNDLE=$(realpath "${1:-dist/medviewer}")
ROOT=$(realpath -m "${2:-build/clean-root}")
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# What the bundle needs from the system for offscreen use (Qt's GUI library links libGL and
# libEGL; PyInstaller leaves the GL and xcb libraries to the system) and a font for its text.
RUNTIME_PACKAGES="libgl1 libegl1 libxcb1 fonts-dejavu-core"

if [ "$(id -u)" != 0 ]; then echo "clean-machine: needs root (debootstrap, chroot)" >&2; exit 2; fi
if [ ! -x "$BUNDLE/medviewer" ]; then echo "clean-machine: no bundle in $BUNDLE" >&2; exit 2; fi
if [ ! -x "$ROOT/bin/sh" ]; then
    command -v debootstrap >/dev/null || { echo "clean-machine: apt-get install debootstrap" >&2; exit 2; }
    debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR"
fi

rm -rf "$ROOT/opt/medviewer" "$ROOT/work"
mkdir -p "$ROOT/work" "$ROOT/proc" "$ROOT/dev"
cp -a "$BUNDLE" "$ROOT/opt/medviewer"
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
trap 'umount "$ROOT/proc" "$ROOT/dev" 2>/dev/null || true' EXIT

FAILED=0
run() {  # run STEP ARGS...: the bundle inside the root, with a bare environment
    local step=$1; shift
    local started=$SECONDS
    if chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/work LANG=C.UTF-8 \
        QT_QPA_PLATFORM=offscreen /opt/medviewer/medviewer "$@" > "$ROOT/work/$step.out" 2> "$ROOT/work/$step.err"; then
        echo "ok    $step ($((SECONDS - started)) s)"
    else
        echo "FAIL  $step: $(tail -n 2 "$ROOT/work/$step.err" | tr '\n' ' ')"
        FAILED=1
    fi
}
expect() {  # expect STEP TEXT: the step's output contains TEXT
    if ! grep -qF -- "$2" "$ROOT/work/$1.out"; then echo "FAIL  $1: no '$2' in its output"; FAILED=1; fi
}

echo "clean machine: Debian $(chroot "$ROOT" cat /etc/debian_version), $(chroot "$ROOT" sh -c 'ls /usr/bin | wc -l') programs, python3: $(chroot "$ROOT" sh -c 'command -v python3 || echo none')"
if chroot "$ROOT" dpkg -s libgl1 >/dev/null 2>&1; then
    echo "(the root already has $RUNTIME_PACKAGES: skipping the bare-root step)"
else
    echo "1. bare root"
    run bare_demo_data demo-data /work/bare
    run bare_info info "$(cd "$ROOT" && ls -d work/bare/dicom/*/CT | sed 's|^|/|')" --json
    expect bare_info '"shape": [300, 512, 512]'
    if chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/work QT_QPA_PLATFORM=offscreen \
        /opt/medviewer/medviewer about > "$ROOT/work/bare_about.out" 2> "$ROOT/work/bare_about.err"; then
        echo "FAIL  bare_about: Qt loaded without libGL?"; FAILED=1
    elif grep -qF "medviewer: missing: Qt cannot load: libGL.so.1" "$ROOT/work/bare_about.err"; then
        echo "ok    bare_about names what is missing: $(grep -F 'Qt cannot load' "$ROOT/work/bare_about.err")"
    else
        echo "FAIL  bare_about: $(tail -n 2 "$ROOT/work/bare_about.err" | tr '\n' ' ')"; FAILED=1
    fi
    echo "2. apt-get install $RUNTIME_PACKAGES"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # (apt's complaints about /dev/pts and apt-utils in a chroot go to work/apt.log)
    chroot "$ROOT" apt-get -qq update > "$ROOT/work/apt.log" 2>&1
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
        $RUNTIME_PACKAGES >> "$ROOT/work/apt.log" 2>&1
fi
echo "3. the bundle as a user runs it"
run version --version;                         expect version "medviewer "
run about about;                               expect about "bundled models: demo-ct-lung-nodule-seg, demo-ct-nodule-cls, demo-cxr-nodule-cls"
run demo_data demo-data /work/demo
CT=$(cd "$ROOT" && ls -d work/demo/dicom/*/CT | head -n 1)
DX=$(cd "$ROOT" && ls -d work/demo/dicom/*/DX | head -n 1)
run index index /work/demo/dicom --db /work/db.sqlite --json
expect index '"patients": 1, "studies": 2, "series": 2, "instances": 301, "skipped": []'
run info info "/$CT" --json;                   expect info '"shape": [300, 512, 512]'
run screenshot screenshot "/$CT" --out /work/shot.png --layout 1x3 --size 900x300
run infer_dx infer --model demo-cxr-nodule-cls "/$DX" --out /work/cxr --device cpu --json
expect infer_dx '"decision": ["nodule"]'
run infer_ct infer --model demo-ct-lung-nodule-seg "/$CT" --out /work/seg --device cpu \
    --pdf /work/seg/report.pdf --seg /work/seg/seg.dcm --sr /work/seg/sr.dcm
for file in shot.png seg/labels.nii.gz seg/report.pdf seg/seg.dcm seg/sr.dcm; do
    [ -s "$ROOT/work/$file" ] || { echo "FAIL  $file was not written"; FAILED=1; }
done
run desktop desktop install --data-home /work/share
expect desktop "it starts: /opt/medviewer/medviewer"
run startup --startup-probe /work/probe.json --db /work/probe.sqlite --settings /work/probe.ini
[ -s "$ROOT/work/probe.json" ] || { echo "FAIL  the main window was never painted"; FAILED=1; }

echo "4. libraries a desktop session must add (the bundle's own folders searched first):"
LIBS=/opt/medviewer/_internal:/opt/medviewer/_internal/PySide6/Qt/lib
for plugin in platforms/libqxcb.so platforms/libqwayland.so xcbglintegrations/libqxcb-glx-integration.so; do
    path="/opt/medviewer/_internal/PySide6/Qt/plugins/$plugin"
    [ -e "$ROOT$path" ] || continue
    missing=$(chroot "$ROOT" env LD_LIBRARY_PATH=$LIBS ldd "$path" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    echo "  $plugin: ${missing:-none}"
done
if [ "$FAILED" = 0 ]; then echo "clean machine: all steps passed"; else echo "clean machine: FAILED"; fi
exit "$FAILED"
