//! Giving memory back to the system after a burst of connections.
//!
//! glibc keeps what a burst of connections freed in the arenas of the
//! threads that freed it. Measured by `make soak`: after 3,290 idle tunnels
//! were opened and closed, the engine held 60 MiB of which 5 MiB was in use,
//! and `malloc_trim` brought it back to 22 MiB (18.5 MiB at start). So once
//! the number of open connections has fallen well below its peak, the
//! engine asks glibc to return the free pages, off the async threads.
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

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    // SAFETY: malloc_trim takes a plain integer and works on glibc's own
    // arenas under their locks; it frees nothing that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

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
