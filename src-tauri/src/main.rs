//! Homeagent desktop: a thin Tauri 2 shell over `homeagent-api`. It starts the phone (or the
//! training line when no platform is configured), registers the UI's commands and forwards
//! the phone's events to the window unchanged (`phone-event`). Everything else is in the API.
#![cfg_attr(
    all(not(debug_assertions), target_os = "windows"),
    windows_subsystem = "windows"
)]
#![forbid(unsafe_code)]

mod commands;
mod shell;

fn main() {
    let mut args = std::env::args().skip(1);
    if let Some(first) = args.next()
        && first == "--export-bindings"
    {
        let path = args
            .next()
            .unwrap_or_else(|| "../ui/src/bindings.ts".to_owned());
        if let Err(error) = commands::export_bindings(&path) {
            eprintln!("homeagent-desktop: cannot export bindings to {path}: {error}");
            std::process::exit(1);
        }
        return;
    }
    // A second launch (a tel: link clicked while the app runs) hands over and exits.
    if shell::hand_over_to_running_instance() {
        return;
    }
    shell::run();
}
