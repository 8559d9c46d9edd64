#!/usr/bin/env bash
# Installs everything multiproc needs to build, test and benchmark, from Debian's packages only.
# Idempotent: a second run installs nothing new. Run as root (or with sudo available).
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build g++ clang
  clang-format-14                               # scripts/check_format.sh (.clang-format is for 14)
  libclang-rt-14-dev                            # libFuzzer, ASan, UBSan and TSan runtimes (clang 14)
  libgtest-dev libgmock-dev libbenchmark-dev   # tests, micro-benchmarks
  libssl-dev                                    # HMAC (MD5, SHA-256) of the authkey handshake
  libboost-dev                                  # Boost.Interprocess, benchmark comparison only
  python3                                       # side-by-side benchmarks, wire-compatibility tests
  python3-joblib                                # parallel_map benchmark baseline (joblib)
  chromium                                      # headless browser test of the HTML performance report
  libopenmpi-dev openmpi-bin                    # multiproc::mpi (optional target) and its tests
  libmpich-dev mpich                            # the same with MPICH (the mpich preset)
  munge slurm-wlm                               # the srun test (tests/mpi/slurm.sh, a one-node Slurm)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all dependencies present"
