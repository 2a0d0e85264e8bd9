#!/usr/bin/env bash
# Create or refresh the project's virtual environment at .venv.
#
#   scripts/bootstrap.sh            the service alone (what `citywatch` needs)
#   scripts/bootstrap.sh test       plus the test tools and the train extra
#
# Runs again only when pyproject.toml changed since the last install. Prints
# nothing on the fast path, so wrappers can call it every time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
profile=${1:-run}
python=${PYTHON:-python3}

case "$profile" in
  run) extras="[postgres]" ;;
  test) extras="[test,train,postgres]" ;;
  *) echo "usage: scripts/bootstrap.sh [run|test]" >&2; exit 2 ;;
esac

stamp="$venv/.citywatch-$profile"
want=$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "citywatch: installing into $venv ($profile) ..." >&2
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
"$venv/bin/python" -m pip install -q -e "$root$extras" >&2

# ultralytics depends on the desktop OpenCV build, which installs the same
# cv2 package as the headless one and silently overwrites it. Keep exactly
# one: the headless build the service runs with.
if "$venv/bin/python" -m pip show -q opencv-python >/dev/null 2>&1; then
  "$venv/bin/python" -m pip uninstall -q -y opencv-python >&2
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps \
    "$("$venv/bin/python" -m pip show opencv-python-headless | awk '/^Version:/{print "opencv-python-headless=="$2}')" >&2
fi
"$venv/bin/python" - <<'PY'
import importlib.metadata as md

others = {"opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless"}
found = sorted(others & {d.metadata["Name"] for d in md.distributions()})
if found:
    raise SystemExit(f"citywatch: a second OpenCV build is installed: {found}")
import cv2  # noqa: F401  fails loudly if removing the other build damaged cv2
PY
echo "$want" > "$stamp"
[ "$profile" = test ] && echo "$want" > "$venv/.citywatch-run"
echo "citywatch: environment ready" >&2
