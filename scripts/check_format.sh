#!/usr/bin/env bash
# Checks that every tracked C++ file (*.hpp, *.cpp) is formatted as .clang-format says, with
# clang-format 14 (the version CI installs: another version formats differently).
#   bash scripts/check_format.sh          report the files and lines that differ; exit 1 if any
#   bash scripts/check_format.sh --fix    reformat those files in place
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format-14 || true)
if [[ -z "$fmt" ]] && command -v clang-format >/dev/null &&
    clang-format --version | grep -q 'version 14\.'; then
  fmt=$(command -v clang-format)
fi
[[ -n "$fmt" ]] || { echo "check_format: clang-format 14 not found (bash scripts/install-deps.sh)" >&2; exit 2; }

mapfile -t files < <(git ls-files '*.hpp' '*.cpp')
if [[ "${1:-}" == "--fix" ]]; then
  "$fmt" -i "${files[@]}"
  echo "check_format: formatted ${#files[@]} files with $("$fmt" --version | grep -o 'version [0-9.]*')"
  exit 0
fi
echo "check_format: ${#files[@]} files (git ls-files '*.hpp' '*.cpp') against .clang-format"
if ! out=$("$fmt" --dry-run --Werror "${files[@]}" 2>&1); then
  places=$(printf '%s\n' "$out" | grep -E '^[^ ]+:[0-9]+:[0-9]+: (error|warning)' || true)
  [[ -n "$places" ]] || { printf '%s\n' "$out"; exit 2; }  # clang-format itself failed
  # One line a file: how many places differ, and the first.
  printf '%s\n' "$places" | awk -F: '{ if (!($1 in n)) { first[$1] = $2; order[++k] = $1 } n[$1]++ }
    END { for (i = 1; i <= k; i++) printf "%s:%s: %d places differ\n", order[i], first[order[i]], n[order[i]] }'
  n=$(printf '%s\n' "$places" | wc -l)
  nf=$(printf '%s\n' "$places" | cut -d: -f1 | sort -u | wc -l)
  echo "check_format: FAILED, $n places in $nf files differ from .clang-format (fix: bash scripts/check_format.sh --fix)"
  exit 1
fi
echo "check_format: OK"
