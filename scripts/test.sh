#!/usr/bin/env bash
# Run every test. First installs what the tests need and the machine lacks (scripts/install-deps.sh:
# Debian's packages, as root or with password-less sudo; otherwise it names them and stops).
# Where MPI is installed (mpicc and mpirun on PATH), the MPI backend is built and tested too;
# elsewhere its tests are skipped with a note. Under CI (CI=true) MPI is required, so its tests can
# never be skipped silently there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Build and launch with OpenMPI even where MPICH is installed too; mpirun refuses root unless told.
if command -v mpicc.openmpi >/dev/null 2>&1; then
    export MPICC="${MPICC:-mpicc.openmpi}" THERMOCLINE_MPIRUN="${THERMOCLINE_MPIRUN:-mpirun.openmpi}"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
features=()
if command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then
    features=(--features thermocline/mpi)
    echo "test.sh: MPI found: building and testing the MPI backend"
elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: CI requires MPI (install libopenmpi-dev openmpi-bin libclang-dev)" >&2
    exit 1
else
    echo "test.sh: MPI not installed: skipping the MPI backend tests (apt-get install libopenmpi-dev openmpi-bin libclang-dev)"
fi
exec cargo test --release --workspace "${features[@]}" "$@"
