#!/usr/bin/env bash
# On a real X server (Xvfb), check what a taskbar reads from medviewer's main window: the
# class (matches StartupWMClass), the desktop file name (matches medviewer.desktop) and the
# icon sizes in _NET_WM_ICON.
#
# Usage: packaging/x11-window-check.sh [MEDVIEWER_COMMAND]   (default dist/medviewer/medviewer)
# Needs: Xvfb and xprop/xwininfo (Debian: xvfb x11-utils) and the X libraries of
# packaging/README.md ("System libraries"). Exits 1 if a property is missing or wrong.
set -euo pipefail

PROGRAM=${1:-dist/medviewer/medviewer}
EXPECTED_SIZES="16x16 24x24 32x32 48x48 64x64 128x128 256x256"  # Qt hands X at most 256 px
WORK=$(mktemp -d)
APP=""
# Xvfb picks a free display and writes its number to the pipe (no clash with a running one).
exec 3< <(Xvfb -displayfd 1 -screen 0 1280x800x24 2> "$WORK/xvfb.log")
XVFB=$!
trap 'kill $APP $XVFB 2>/dev/null || true; rm -rf "$WORK"' EXIT
read -r -t 20 DISPLAY_NUMBER <&3 || { echo "FAIL  Xvfb did not start"; exit 1; }
export DISPLAY=":$DISPLAY_NUMBER"
HOME=$WORK XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data XDG_CACHE_HOME=$WORK/cache \
    "$PROGRAM" --db "$WORK/db.sqlite" --settings "$WORK/settings.ini" --exit-after 20000 \
    > "$WORK/medviewer.log" 2>&1 &
APP=$!
WINDOW=""
for _ in $(seq 1 60); do
    WINDOW=$(xwininfo -root -tree | awk '/"medviewer [0-9]/ {print $1; exit}')
    [ -n "$WINDOW" ] && break
    sleep 0.5
done
if [ -z "$WINDOW" ]; then
    echo "FAIL  no medviewer window appeared:"; tail -n 5 "$WORK/medviewer.log"; exit 1
fi
sleep 1
FAILED=0
check() {  # check PROPERTY EXPECTED
    local value
    value=$(xprop -id "$WINDOW" "$1" | sed 's/^[^=]*= //')
    if [ "$value" = "$2" ]; then echo "ok    $1 = $value"; else echo "FAIL  $1 = $value (expected $2)"; FAILED=1; fi
}
check WM_CLASS '"medviewer", "medviewer"'
check _KDE_NET_WM_DESKTOP_FILE '"medviewer"'
check _GTK_APPLICATION_ID '"medviewer"'
# _NET_WM_ICON is a list of (width, height, width*height ARGB pixels): read the sizes.
SIZES=$(xprop -id "$WINDOW" -notype 32c _NET_WM_ICON | sed 's/^[^=]*= //' | tr -d ' ' | tr ',' '\n' | awk '
    BEGIN { k = 0; skip = 0 }
    { if (skip > 0) { skip--; next }
      if (k == 0) { w = $1; k = 1; next }
      sizes = sizes (sizes ? " " : "") w "x" $1; skip = w * $1; k = 0 }
    END { print sizes }')
if [ "$SIZES" = "$EXPECTED_SIZES" ]; then
    echo "ok    _NET_WM_ICON sizes: $SIZES"
else
    echo "FAIL  _NET_WM_ICON sizes: '$SIZES' (expected $EXPECTED_SIZES)"; FAILED=1
fi
exit "$FAILED"
