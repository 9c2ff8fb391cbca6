// No console window on Windows for the release build.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    veil_app::gl::keep_out_of_this_process();
    // The login-time repair runs this program with `sysproxy restore
    // --if-stranded` when the app turned the system proxy on: no window then.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(home) = veil_system::sysproxy::login_task::restore_request(&args) {
        std::process::exit(veil_app::repair_at_login(home));
    }
    // The window, in a process of its own, started by the app.
    if args.first().map(String::as_str) == Some(veil_app::window_process::ARG) {
        std::process::exit(veil_app::window_process::run());
    }
    veil_app::run();
}
