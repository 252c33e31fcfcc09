//! vigil's own background OS threads (the analysis thread, the prediction log's writer): named,
//! and at a lower CPU priority than the data path.
//!
//! Owns: how those threads are started. May not touch: anything they run.
//! Architecture invariant: work that can fall behind (it has a bounded queue that drops and
//! counts) runs at [`NICE`]; when it and the data path want the same core, the data path wins.
//! Work that is optional altogether (shadow traffic) runs under `SCHED_IDLE` ([`spawn_idle`]):
//! only on CPU time nothing else wants.

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

/// Spawns a named thread that runs under `SCHED_IDLE` (Linux): the scheduler gives it a CPU only
/// when no other thread wants one, and any other thread preempts it at once. For shadow traffic,
/// which may fall behind (its budget then goes unused) but must never delay a client. Elsewhere,
/// or if the policy is refused, it runs at [`NICE`] like [`spawn`].
pub fn spawn_idle<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        if !idle_policy() {
            lower_priority();
        }
        f()
    })
}

/// Puts the calling thread under `SCHED_IDLE`; false if that is not possible here.
fn idle_policy() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 is the
        // calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc == 0 {
            return true;
        }
        tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_IDLE refused; the thread runs at nice 10");
    }
    false
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
