#!/usr/bin/env bash
# Restore the bundled example (a noisy 256² photo, Gaussian σ≈25) to 4096² with the default profile.
source "$(dirname "$0")/_env.sh" run
cd "$ROOT"
mkdir -p out
exec 4kagent restore fourkagent/examples/astronaut_256_noisy.png -o out/astronaut_4k.png --overwrite "$@"
