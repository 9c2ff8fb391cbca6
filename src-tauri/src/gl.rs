//! No OpenGL in the app's own process. The window's pages are drawn without
//! accelerated compositing (see `window.rs`), yet GTK and WebKit still set up
//! OpenGL in this process at start, loading the GL driver (Mesa's software
//! one links all of LLVM): about 30 MiB of the tray-only app's memory for
//! nothing (`make app-metrics`: 105 → 75 MiB PSS started with --hidden).
#![allow(unsafe_code)]

/// Turns GDK's OpenGL off unless the user chose otherwise (`GDK_GL` set).
/// Call it first in `main`, before any thread starts.
pub fn keep_out_of_this_process() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("GDK_GL").is_none() {
        // SAFETY: `main` calls this before it starts any thread (the async
        // runtime, GTK and the engine come later), so nothing else reads or
        // writes the environment at the same time.
        unsafe { std::env::set_var("GDK_GL", "disable") };
    }
}
