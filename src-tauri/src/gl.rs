//! What WebKit is told through the environment, before anything starts.
//!
//! - No OpenGL from GTK, in the app's process nor in the window's (which
//!   inherits this environment). The window's pages are drawn without
//!   accelerated compositing (see `window_process.rs`), yet GTK still sets
//!   up OpenGL at start, loading the GL driver (Mesa's software one links
//!   all of LLVM): about 30 MiB of the tray-only app's memory for nothing
//!   (`make app-metrics`: 105 → 75 MiB PSS started with --hidden).
//! - No JavaScript JIT in the window's web process. The window is a few
//!   tables and one chart redrawn once a second; JavaScriptCore's
//!   interpreter draws it as fast as the eye can tell, and without the JIT
//!   the web process neither allocates compiled code nor maps memory that
//!   is both writable and executable (`make app-metrics`: window open,
//!   241 → 231 MiB PSS). The web process inherits this environment.
//!
//! Every other child inherits it too. Besides its own window process, the
//! app starts only helpers (the desktop's settings tools, `ps`, the shells
//! `veil env` checks), none of them a GTK program or a browser; a change that makes it launch one must
//! remove these two variables from that child's environment when this
//! module set them.
#![allow(unsafe_code)]

/// Sets each variable unless the user already set it (so `GDK_GL=` or
/// `JSC_useJIT=true` in the environment still win). Call it first in
/// `main`, before any thread starts.
pub fn keep_out_of_this_process() {
    #[cfg(target_os = "linux")]
    for (name, value) in [("GDK_GL", "disable"), ("JSC_useJIT", "false")] {
        if std::env::var_os(name).is_none() {
            // SAFETY: `main` calls this before it starts any thread (the
            // async runtime, GTK and the engine come later), so nothing
            // else reads or writes the environment at the same time.
            unsafe { std::env::set_var(name, value) };
        }
    }
}
