//! Giving memory back to the system after a burst of connections.
//!
//! glibc keeps what a burst of connections freed in the arenas of the
//! threads that freed it. Measured by `make soak`: after 3,290 idle tunnels
//! were opened and closed, the engine held 60 MiB of which 5 MiB was in use,
//! and `malloc_trim` brought it back to 22 MiB (18.5 MiB at start). So once
//! the number of open connections has fallen well below its peak, the
//! engine asks glibc to return the free pages, off the async threads.
//!
//! glibc also raises its mmap threshold each time a large block is freed,
//! so that after the first few large reads (the socket table for client
//! attribution is a 1 MiB string on a busy machine) every later one comes
//! from the arenas instead, and the arenas grow around blocks that stay in
//! use. [`configure`] pins the threshold at 128 KiB, glibc's default start:
//! large blocks always go back to the system when freed. Measured by the
//! soak with 2,000 idle tunnels: RSS after close +26% of the start without
//! it, +13% with it.
//!
//! Elsewhere (other C libraries, macOS, Windows) this does nothing.

#![allow(unsafe_code)]

/// Connections that must have closed since the peak before a trim: a trim
/// walks every arena, so it is not worth it for a few.
const CLOSED_BEFORE_TRIM: u64 = 256;

/// Watches the number of open connections (once a second).
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    peak: u64,
}

impl Trimmer {
    pub fn observe(&mut self, open: u64) {
        if self.should_trim(open) {
            tokio::task::spawn_blocking(release);
        }
    }

    fn should_trim(&mut self, open: u64) -> bool {
        self.peak = self.peak.max(open);
        if self.peak >= open.saturating_add(CLOSED_BEFORE_TRIM) {
            self.peak = open;
            return true;
        }
        false
    }
}

/// Large blocks are mapped and unmapped on their own, never kept in the
/// arenas (see the module comment). Once per process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: mallopt takes two plain integers and only changes glibc's
        // own tuning under its lock; a refusal (0) leaves the default.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    });
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn configure() {}

/// glibc's own starting mmap threshold.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Gives the free pages of every arena back to the system (glibc; elsewhere
/// nothing). Blocking: a trim walks every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release() {
    // SAFETY: malloc_trim takes a plain integer and works on glibc's own
    // arenas under their locks; it frees nothing that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_many_connections_closed() {
        let mut t = Trimmer::default();
        assert!(!t.should_trim(10));
        assert!(!t.should_trim(3000));
        assert!(!t.should_trim(2900), "a hundred closed is not enough");
        assert!(t.should_trim(100));
        assert!(!t.should_trim(100), "once per fall");
        assert!(!t.should_trim(50));
        assert!(!t.should_trim(400));
        assert!(t.should_trim(0));
    }
}
