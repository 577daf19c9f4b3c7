#!/usr/bin/env bash
# Run the desktop bundle on a machine with nothing installed: a minimal Debian 12 root made
# by debootstrap (no Python, no X, no fonts, no compilers), entered with chroot.
#
# Usage: sudo packaging/clean-machine.sh [BUNDLE_DIR] [ROOT] [WHEEL]
#        (defaults: dist/medviewer and /var/tmp/medviewer-clean-root, made once and reused;
#        with WHEEL, also installs it in a venv of the root's own Debian Python and runs the
#        same steps with it; TORCH= gives pip's arguments for torch, default torch==2.13.0)
#
# 1. In the bare root: the command-line steps that need no Qt (demo-data, index, info, infer
#    without reports) must work, and `about` must name what Qt lacks (the system's libGL,
#    libEGL, libxcb).
# 2. Installs RUNTIME_PACKAGES (the minimum documented in packaging/README.md) in the root.
# 3. Runs, as a user would after unpacking the archive: --version, about (models and every
#    DICOM decoder), demo-data, index, info, screenshot, infer (radiograph classifier; CT
#    segmentation with the PDF report, DICOM SEG and SR), desktop install, and a start-up to
#    the painted main window (Qt offscreen).
# 4. Lists the shared libraries Qt's desktop platform plugins (xcb, wayland) still miss there:
#    what a desktop session provides.
# 5. With WHEEL: Debian's python3 + venv in the root, torch and the wheel from the package
#    index, then the steps of 3 with the venv's medviewer.
# Exits 1 if any step failed.
set -euo pipefail

BUNDLE=$(realpath "${1:-dist/medviewer}")
# The root lives outside the checkout, so that no `rm -rf build` can walk into a mount.
ROOT=$(realpath -m "${2:-/var/tmp/medviewer-clean-root}")
WHEEL=${3:+$(realpath "$3")}
TORCH=${TORCH:-torch==2.13.0}  # pip arguments for torch in the wheel's venv
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# What the bundle needs from the system for offscreen use (Qt's GUI library links libGL and
# libEGL; PyInstaller leaves the GL and xcb libraries to the system) and a font for its text.
RUNTIME_PACKAGES="libgl1 libegl1 libxcb1 fonts-dejavu-core"
# The wheel's PySide6 also takes these from the system (the bundle carries its own copies).
WHEEL_PACKAGES="python3 python3-venv ca-certificates libglib2.0-0 libdbus-1-3 libfontconfig1 libfreetype6 libxkbcommon0"

if [ "$(id -u)" != 0 ]; then echo "clean-machine: needs root (debootstrap, chroot)" >&2; exit 2; fi
if [ ! -x "$BUNDLE/medviewer" ]; then echo "clean-machine: no bundle in $BUNDLE" >&2; exit 2; fi
if [ ! -x "$ROOT/bin/sh" ]; then
    command -v debootstrap >/dev/null || { echo "clean-machine: apt-get install debootstrap" >&2; exit 2; }
    debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR"
fi

rm -rf "$ROOT/opt/medviewer" "$ROOT/work"
mkdir -p "$ROOT/work" "$ROOT/proc" "$ROOT/dev"
cp -a "$BUNDLE" "$ROOT/opt/medviewer"
MOUNTS=()
unmount_all() {  # last mounted first; a busy mount is detached lazily, and said
    local k
    for ((k = ${#MOUNTS[@]} - 1; k >= 0; k--)); do
        umount "${MOUNTS[k]}" 2>/dev/null || umount -l "${MOUNTS[k]}" \
            || echo "clean-machine: could not unmount ${MOUNTS[k]}" >&2
    done
}
trap unmount_all EXIT
mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
mount --bind /dev "$ROOT/dev" && MOUNTS+=("$ROOT/dev")

FAILED=0
PROGRAM=/opt/medviewer/medviewer
run() {  # run STEP ARGS...: the bundle inside the root, with a bare environment
    local step=$1; shift
    local started=$SECONDS
    if timeout 900 chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/work LANG=C.UTF-8 \
        QT_QPA_PLATFORM=offscreen "$PROGRAM" "$@" > "$ROOT/work/$step.out" 2> "$ROOT/work/$step.err"; then
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
    run bare_index index /work/bare/dicom --db /work/bare.sqlite --json
    expect bare_index '"instances": 301, "skipped": []'
    run bare_info info "$(cd "$ROOT" && ls -d work/bare/dicom/*/CT 2>/dev/null | sed 's|^|/|')" --json
    expect bare_info '"shape": [300, 512, 512]'
    run bare_infer_dx infer --model demo-cxr-nodule-cls \
        "$(cd "$ROOT" && ls -d work/bare/dicom/*/DX 2>/dev/null | sed 's|^|/|')" --out /work/bare-cxr --json
    expect bare_infer_dx '"decision": ["nodule"]'
    if timeout 300 chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/work QT_QPA_PLATFORM=offscreen \
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
user_steps() {  # user_steps LABEL: what a user runs, with $PROGRAM; files under /work/LABEL
    local l=$1 w=/work/$1
    mkdir -p "$ROOT$w"
    run "${l}_version" --version;              expect "${l}_version" "medviewer "
    run "${l}_about" about
    expect "${l}_about" "bundled models: demo-ct-lung-nodule-seg, demo-ct-nodule-cls, demo-cxr-nodule-cls"
    run "${l}_demo_data" demo-data "$w/demo"
    local ct dx
    ct=$(cd "$ROOT" && ls -d "${w#/}"/demo/dicom/*/CT 2>/dev/null | head -n 1 || true)
    dx=$(cd "$ROOT" && ls -d "${w#/}"/demo/dicom/*/DX 2>/dev/null | head -n 1 || true)
    if [ -z "$ct" ] || [ -z "$dx" ]; then echo "FAIL  $l: no demo CT/DX series"; FAILED=1; return; fi
    run "${l}_index" index "$w/demo/dicom" --db "$w/db.sqlite" --json
    expect "${l}_index" '"patients": 1, "studies": 2, "series": 2, "instances": 301, "skipped": []'
    run "${l}_info" info "/$ct" --json;       expect "${l}_info" '"shape": [300, 512, 512]'
    run "${l}_screenshot" screenshot "/$ct" --out "$w/shot.png" --layout 1x3 --size 900x300
    run "${l}_infer_dx" infer --model demo-cxr-nodule-cls "/$dx" --out "$w/cxr" --device cpu --json
    expect "${l}_infer_dx" '"decision": ["nodule"]'
    run "${l}_infer_ct" infer --model demo-ct-lung-nodule-seg "/$ct" --out "$w/seg" --device cpu \
        --pdf "$w/seg/report.pdf" --seg "$w/seg/seg.dcm" --sr "$w/seg/sr.dcm"
    for file in shot.png seg/labels.nii.gz seg/report.pdf seg/seg.dcm seg/sr.dcm; do
        [ -s "$ROOT$w/$file" ] || { echo "FAIL  $l: $file was not written"; FAILED=1; }
    done
    run "${l}_desktop" desktop install --data-home "$w/share"
    expect "${l}_desktop" "it starts: $PROGRAM"
    run "${l}_startup" --startup-probe "$w/probe.json" --db "$w/probe.sqlite" --settings "$w/probe.ini"
    [ -s "$ROOT$w/probe.json" ] || { echo "FAIL  $l: the main window was never painted"; FAILED=1; }
}

echo "3. the bundle as a user runs it"
user_steps bundle

echo "4. libraries a desktop session must add (the bundle's own folders searched first):"
LIBS=/opt/medviewer/_internal:/opt/medviewer/_internal/PySide6/Qt/lib
for plugin in platforms/libqxcb.so platforms/libqwayland.so xcbglintegrations/libqxcb-glx-integration.so; do
    path="/opt/medviewer/_internal/PySide6/Qt/plugins/$plugin"
    [ -e "$ROOT$path" ] || continue
    missing=$(chroot "$ROOT" env LD_LIBRARY_PATH=$LIBS ldd "$path" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    echo "  $plugin: ${missing:-none}"
done
if [ -n "$WHEEL" ]; then
    echo "5. the wheel, in a venv of the root's own Python (Debian's python3)"
    echo "   apt-get install $WHEEL_PACKAGES"
    # shellcheck disable=SC2086
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
        $WHEEL_PACKAGES >> "$ROOT/work/apt.log" 2>&1
    cp "$WHEEL" "$ROOT/work/"
    # This machine's package index settings: pip's configuration, the CA bundle it names
    # (a proxy may re-sign TLS), and a local wheel folder it may name.
    [ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
    if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
        mkdir -p "$ROOT$(dirname "$PIP_CERT")" && cp "$PIP_CERT" "$ROOT$PIP_CERT"
    fi
    if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ]; then
        mkdir -p "$ROOT$PIP_FIND_LINKS"
        mount --bind -o ro "$PIP_FIND_LINKS" "$ROOT$PIP_FIND_LINKS"
        MOUNTS+=("$ROOT$PIP_FIND_LINKS")
    fi
    pip_env=(env HOME=/work PIP_FIND_LINKS="${PIP_FIND_LINKS:-}" PIP_CERT="${PIP_CERT:-}")
    started=$SECONDS
    # shellcheck disable=SC2086  # TORCH is a list of pip arguments
    if chroot "$ROOT" python3 -m venv /work/venv \
        && timeout 1800 chroot "$ROOT" "${pip_env[@]}" /work/venv/bin/pip install -q $TORCH \
            > "$ROOT/work/pip.log" 2>&1 \
        && timeout 1800 chroot "$ROOT" "${pip_env[@]}" /work/venv/bin/pip install -q \
            "/work/$(basename "$WHEEL")" >> "$ROOT/work/pip.log" 2>&1; then
        echo "ok    wheel installed with $(chroot "$ROOT" /work/venv/bin/python --version) ($((SECONDS - started)) s)"
        PROGRAM=/work/venv/bin/medviewer
        user_steps wheel
    else
        echo "FAIL  installing the wheel: $(grep -E '^ERROR' "$ROOT/work/pip.log" | tail -n 2 | tr '\n' ' ')"
        FAILED=1
    fi
fi
if [ "$FAILED" = 0 ]; then echo "clean machine: all steps passed"; else echo "clean machine: FAILED"; fi
exit "$FAILED"
