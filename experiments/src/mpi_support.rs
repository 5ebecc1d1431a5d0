//! MPI in the CLI: the session type exists with or without the `mpi` feature, so the rest of the
//! CLI needs no conditional code; without the feature it cannot be constructed.

#[cfg(feature = "mpi")]
pub use thermocline_bus::mpi::MpiSession;

/// Without the `mpi` feature there is no MPI session (this type has no values).
#[cfg(not(feature = "mpi"))]
pub enum MpiSession {}

#[cfg(not(feature = "mpi"))]
impl MpiSession {
    /// Unreachable: no session exists in this build.
    pub fn rank(&self) -> thermocline_bus::ShardId {
        match *self {}
    }
    /// Unreachable: no session exists in this build.
    pub fn size(&self) -> u32 {
        match *self {}
    }
    /// Unreachable: no session exists in this build.
    pub fn barrier(&self) {
        match *self {}
    }
    /// Unreachable: no session exists in this build.
    pub fn abort(&self, _: &str) -> ! {
        match *self {}
    }
}

/// Initialise MPI for a run under `mpirun`.
pub fn init() -> anyhow::Result<MpiSession> {
    #[cfg(feature = "mpi")]
    {
        Ok(MpiSession::init()?)
    }
    #[cfg(not(feature = "mpi"))]
    {
        anyhow::bail!(
            "this thermocline was built without MPI support; rebuild with `cargo build --release --features mpi` (see docs/cluster.md)"
        )
    }
}

/// The raw-collectives baselines, µs per round: (`MPI_Allreduce` + `MPI_Alltoallv`,
/// `MPI_Allreduce` alone).
pub fn raw_collectives_us(session: &MpiSession, iterations: u64, bytes_per_peer: usize) -> (f64, f64) {
    #[cfg(feature = "mpi")]
    {
        let r = thermocline_bus::mpi::raw_collectives_us(session, iterations, bytes_per_peer);
        (r.allreduce_alltoallv_us, r.allreduce_only_us)
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = (iterations, bytes_per_peer);
        match *session {}
    }
}
