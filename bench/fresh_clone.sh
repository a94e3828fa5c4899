#!/usr/bin/env bash
# Times the two README commands on a fresh clone with an empty HOME (targets: demo < 3 min, tests < 5 min).
# Usage: bench/fresh_clone.sh [demo|test|both]   (default both). Prints one line per command.
set -euo pipefail
what="${1:-both}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

measure() {  # $1 = make target
    rm -rf "$work/clone" "$work/home"
    git clone -q "$repo" "$work/clone"
    mkdir -p "$work/home"
    local start end
    start=$(date +%s.%N)
    (cd "$work/clone" && HOME="$work/home" make "$1" > "$work/$1.log" 2>&1) || { tail -20 "$work/$1.log"; exit 1; }
    end=$(date +%s.%N)
    printf 'make %-5s fresh clone, fresh venv: %6.1f s  (%s)\n' "$1" "$(echo "$end - $start" | bc)" \
        "$(grep -Eo '[0-9]+ passed.*in [0-9.]+s|ACCEPT|REJECT|INCONCLUSIVE|INVALID' "$work/$1.log" | head -1)"
}

case "$what" in
    demo) measure demo ;;
    test) measure test ;;
    both) measure demo; measure test ;;
    *) echo "usage: $0 [demo|test|both]" >&2; exit 2 ;;
esac
