//! vigil's own background OS threads (the analysis thread, the prediction log's writer): named,
//! and at a lower CPU priority than the data path.
//!
//! Owns: how those threads are started. May not touch: anything they run.
//! Architecture invariant: work that can fall behind (it has a bounded queue that drops and
//! counts) runs at [`NICE`]; when it and the data path want the same core, the data path wins.

use std::thread::JoinHandle;

/// The nice value of background threads (0 is the default, 19 the lowest priority).
pub const NICE: i32 = 10;

/// Spawns a named thread that first lowers its own priority to [`NICE`].
pub fn spawn<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        lower_priority();
        f()
    })
}

/// Lowers the calling thread's CPU priority to [`NICE`]. On Linux the nice value belongs to the
/// thread (setpriority on its thread id); elsewhere this does nothing. A failure only logs: the
/// thread still works, at the default priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers and have no preconditions.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "background thread keeps the default priority");
        }
    }
}
