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
//! Code is the other half. What a process ran at start (parsing the config,
//! loading certificates, building the window toolkit) stays mapped long
//! after it is needed: pages of the executable and of its libraries that
//! nothing will touch again while Veil sits idle in the tray.
//! [`page_out_code`] asks Linux to reclaim the clean pages of those
//! read-only file mappings (`MADV_PAGEOUT`); a page touched again is read
//! back from the file, so nothing the program sees changes. Pages another
//! process maps too are left alone by the kernel.
//!
//! Elsewhere (other C libraries, macOS, Windows) this does nothing.

#![allow(unsafe_code)]

/// Connections that must have closed since the peak before a trim: a trim
/// walks every arena, so it is not worth it for a few.
const CLOSED_BEFORE_TRIM: u64 = 256;

/// Open connections at or below which the engine counts as idle again.
const IDLE_OPEN: u64 = 8;

/// Watches the number of open connections (once a second).
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    peak: u64,
    /// A burst is over but connections are still open: its code goes once
    /// the engine is idle again.
    code_pending: bool,
}

impl Trimmer {
    pub fn observe(&mut self, open: u64) {
        let (heap, code) = self.step(open);
        if heap || code {
            tokio::task::spawn_blocking(move || {
                if heap {
                    release();
                }
                if code {
                    let paged = page_out_code_if_idle();
                    tracing::debug!(
                        "a burst of connections is over: {} MiB of code mappings paged out",
                        paged >> 20
                    );
                }
            });
        }
    }

    /// Whether to give back the heap now, and the code: the heap as soon
    /// as a burst is over, the code only once the engine is idle again (so
    /// a busy proxy keeps the code it is running).
    fn step(&mut self, open: u64) -> (bool, bool) {
        let heap = self.should_trim(open);
        self.code_pending |= heap;
        let code = self.code_pending && open <= IDLE_OPEN;
        if code {
            self.code_pending = false;
        }
        (heap, code)
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

/// Whether nothing but background work runs in this process (`veil run`,
/// the app with no window), so that code may be paged out. Behind a lock so
/// that a page-out and a window opening never cross: the window's
/// read-ahead always comes after any page-out that was under way.
static CODE_IDLE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

fn code_idle() -> std::sync::MutexGuard<'static, bool> {
    CODE_IDLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process goes idle: unless `still_idle` says otherwise when the lock
/// is held (a window was asked for meanwhile), its code is paged out now
/// ([`page_out_code`]) and again after each burst of connections, once the
/// engine is idle again. `make soak`, 2,000 idle tunnels opened and closed:
/// `veil run` held 12.3–13.6 MiB after close without this, 11.2–12.5 with
/// it (4–5 at start; the rest is heap the burst left and code that comes
/// back a large folio at a time). Returns the bytes of the mappings advised.
pub fn go_idle(still_idle: impl FnOnce() -> bool) -> usize {
    let mut idle = code_idle();
    if !still_idle() {
        return 0;
    }
    *idle = true;
    page_out_code()
}

/// The process is in use again (a window is being built): no more
/// page-outs, and faults read ahead ([`code_read_ahead`]).
pub fn go_busy() {
    let mut idle = code_idle();
    *idle = false;
    code_read_ahead();
}

fn page_out_code_if_idle() -> usize {
    let idle = code_idle();
    if *idle { page_out_code() } else { 0 }
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

/// Reclaims the resident pages of this process's read-only file mappings
/// (code and constants of the executable and its libraries); returns the
/// bytes of the mappings it advised. For a process that has just gone idle
/// (the app's window closed, the tray-only start settled): what is still
/// needed comes back from the page cache or the file on its next touch.
/// Faults then read only the page touched, not the file around it.
#[cfg(target_os = "linux")]
fn page_out_code() -> usize {
    advise_code(&[libc::MADV_RANDOM, libc::MADV_PAGEOUT])
}

/// [`page_out_code`] for a process that is still in use (the app with its
/// window open, once the window has settled): the same pages go, but a
/// later fault still reads ahead, as code being used again wants.
#[cfg(target_os = "linux")]
pub fn page_out_start_up_code() -> usize {
    advise_code(&[libc::MADV_PAGEOUT])
}

/// Undoes [`page_out_code`]'s access pattern: faults read ahead again, as
/// they should while a window is being built.
#[cfg(target_os = "linux")]
fn code_read_ahead() {
    advise_code(&[libc::MADV_NORMAL]);
}

/// Gives each read-only file mapping of this process the advice in turn;
/// returns the bytes of the mappings that took the last one.
#[cfg(target_os = "linux")]
fn advise_code(advice: &[libc::c_int]) -> usize {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut advised = 0;
    for (start, len) in maps.lines().filter_map(read_only_file_mapping) {
        let mut done = -1;
        for &a in advice {
            // SAFETY: the range is one whole mapping of this process as the
            // kernel listed it. MADV_PAGEOUT changes no contents, it only
            // lets the kernel drop clean file pages, which fault back in
            // from the file; MADV_RANDOM and MADV_NORMAL only set the
            // read-ahead hint (a range unmapped meanwhile makes the call
            // fail harmlessly).
            done = unsafe { libc::madvise(start as *mut libc::c_void, len, a) };
        }
        if done == 0 {
            advised += len;
        }
    }
    advised
}

#[cfg(not(target_os = "linux"))]
fn page_out_code() -> usize {
    0
}

#[cfg(not(target_os = "linux"))]
fn code_read_ahead() {}

#[cfg(not(target_os = "linux"))]
pub fn page_out_start_up_code() -> usize {
    0
}

/// A line of `/proc/self/maps` that is a private, read-only mapping of a
/// file (`r-xp` code, `r--p` constants): its start and length.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn read_only_file_mapping(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    // offset, device, inode, then the path
    let path = fields.nth(3)?;
    if !matches!(perms, "r-xp" | "r--p") || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then_some((start, end - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_private_file_mappings_are_paged_out() {
        let line = |s: &str| read_only_file_mapping(s);
        assert_eq!(
            line("55d0c0a00000-55d0c0a20000 r-xp 00001000 fe:00 1234 /usr/bin/veil-app"),
            Some((0x55d0_c0a0_0000, 0x2_0000))
        );
        assert!(line("7f00-8000 r--p 00000000 fe:00 99 /usr/lib/libc.so.6").is_some());
        assert_eq!(
            line("7f00-8000 rw-p 00000000 fe:00 99 /usr/lib/libc.so.6"),
            None,
            "data"
        );
        assert_eq!(
            line("7f00-8000 r--s 00000000 fe:00 99 /var/cache/fc.cache"),
            None,
            "shared"
        );
        assert_eq!(
            line("7f00-8000 r-xp 00000000 00:00 0 [vdso]"),
            None,
            "no file"
        );
        assert_eq!(line("7f00-8000 r-xp 00000000 00:00 0"), None, "anonymous");
        assert_eq!(line("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn paging_out_code_keeps_the_program_running() {
        assert!(page_out_code() > 0, "this test binary has code mappings");
        // Code and constants fault back in.
        assert_eq!(format!("{}", 6 * 7), "42");
    }

    #[test]
    fn code_goes_only_once_a_burst_is_over_and_the_engine_is_idle() {
        let mut t = Trimmer::default();
        assert_eq!(t.step(1000), (false, false));
        // 256 fewer: the heap goes, the code stays while 744 are served.
        assert_eq!(t.step(744), (true, false));
        assert_eq!(t.step(600), (false, false));
        // Idle again (and another 256 closed, so the heap goes again too).
        assert_eq!(t.step(IDLE_OPEN), (true, true));
        // Once per burst.
        assert_eq!(t.step(0), (false, false));
        // Idle without a burst first: nothing.
        let mut quiet = Trimmer::default();
        assert_eq!(quiet.step(5), (false, false));
        assert_eq!(quiet.step(0), (false, false));
    }

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
