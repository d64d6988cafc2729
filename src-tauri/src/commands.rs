//! The commands the UI invokes and the types it sees (exported to `ui/src/bindings.ts`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use homeagent_api::{Command, Event, HistoryEntry, UserSettings};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, State};

use crate::shell::Shell;

/// How the app runs: on the training line (no platform configured) or for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Demo,
    Live,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
pub struct AppInfo {
    pub mode: Mode,
    pub version: String,
    /// The SIP account (user@registrar host), `None` in demo mode.
    pub account: Option<String>,
    /// The OS locale, BCP 47 (`fr-FR`).
    pub locale: String,
    /// A number from a `tel:`/`sip:` link the app was opened with.
    pub deep_link: Option<String>,
    pub workflow: WorkflowInfo,
}

/// What the contact-center screens offer (from the configuration).
#[derive(Debug, Clone, Default, Serialize, Deserialize, specta::Type)]
pub struct WorkflowInfo {
    pub not_ready_reasons: Vec<String>,
    pub dispositions: Vec<homeagent_api::Disposition>,
    /// The longest after-call work, seconds (`None`: no after-call work).
    pub wrapup_seconds: Option<f64>,
    /// The credentials the configured services need (entered in the settings, kept in the
    /// OS keychain).
    pub secrets: Vec<SecretKind>,
}

/// A credential kept in the OS keychain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// The SIP account's password.
    Sip,
    /// The CRM lookup's authorization header value (`context_auth_header`).
    Context,
    /// The platform API's bearer token (`platform_api`).
    Platform,
    /// The TURN server's password (`turn`).
    Turn,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
pub struct AudioDevice {
    pub name: String,
    pub input: bool,
    pub output: bool,
    pub default_input: bool,
    pub default_output: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
pub struct InputLevel {
    pub dbfs: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
pub struct DeepLink {
    pub number: String,
}

pub const PHONE_EVENT: &str = "phone-event";
pub const HISTORY_CHANGED: &str = "history-changed";
pub const INPUT_LEVEL: &str = "input-level";
pub const DEEP_LINK: &str = "deep-link";
/// The sound devices changed (payload: the new list).
pub const DEVICES_CHANGED: &str = "devices-changed";

const TEST_TONE: Duration = Duration::from_secs(1);

#[tauri::command]
#[specta::specta]
pub fn app_info(shell: State<'_, Shell>) -> AppInfo {
    shell.info.clone()
}

#[tauri::command]
#[specta::specta]
pub async fn send_command(shell: State<'_, Shell>, command: Command) -> Result<(), String> {
    shell.send(command).await
}

#[tauri::command]
#[specta::specta]
pub async fn list_devices() -> Result<Vec<AudioDevice>, String> {
    let devices = blocking(homeagent_api::list_audio_devices).await??;
    Ok(audio_devices(devices))
}

pub fn audio_devices(devices: Vec<homeagent_api::AudioDevice>) -> Vec<AudioDevice> {
    devices
        .into_iter()
        .map(|d| AudioDevice {
            name: d.name,
            input: d.input,
            output: d.output,
            default_input: d.default_input,
            default_output: d.default_output,
        })
        .collect()
}

#[tauri::command]
#[specta::specta]
pub fn settings(shell: State<'_, Shell>) -> UserSettings {
    shell.user_settings()
}

#[tauri::command]
#[specta::specta]
pub async fn save_settings(shell: State<'_, Shell>, settings: UserSettings) -> Result<(), String> {
    shell.save_settings(&settings).await
}

/// Stores a credential in the OS keychain (never in a file or a log); an empty value deletes
/// it. Used from the next start.
#[tauri::command]
#[specta::specta]
pub async fn save_secret(
    shell: State<'_, Shell>,
    kind: SecretKind,
    value: String,
) -> Result<(), String> {
    shell.save_secret(kind, &value).await
}

/// The events that rebuild the current state (registration, calls in progress) in a window
/// that opens after they happened.
#[tauri::command]
#[specta::specta]
pub fn recent_events(shell: State<'_, Shell>) -> Vec<Event> {
    shell.recent_events()
}

#[tauri::command]
#[specta::specta]
pub fn history(shell: State<'_, Shell>) -> Vec<HistoryEntry> {
    shell.history()
}

#[tauri::command]
#[specta::specta]
pub async fn play_test_tone(device: Option<String>) -> Result<(), String> {
    blocking(move || homeagent_api::play_test_tone(device.as_deref(), TEST_TONE)).await?
}

#[tauri::command]
#[specta::specta]
pub fn set_level_meter(
    app: AppHandle,
    shell: State<'_, Shell>,
    enabled: bool,
) -> Result<(), String> {
    let mut meter = shell
        .meter
        .lock()
        .map_err(|_| "level meter lock poisoned")?;
    if let Some(stop) = meter.take() {
        stop.store(true, Ordering::Relaxed);
    }
    if !enabled {
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    *meter = Some(stop.clone());
    let device = shell.user_settings().microphone;
    std::thread::spawn(move || {
        let result = homeagent_api::meter_input(device.as_deref(), &stop, |dbfs| {
            let _ = app.emit(INPUT_LEVEL, InputLevel { dbfs });
        });
        if let Err(error) = result {
            tracing::warn!(%error, "level meter stopped");
            let _ = app.emit(
                PHONE_EVENT,
                Event::Warning {
                    message: format!("microphone level: {error}"),
                },
            );
        }
    });
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())
}

pub fn builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(tauri_specta::collect_commands![
            app_info,
            send_command,
            list_devices,
            settings,
            save_settings,
            save_secret,
            recent_events,
            history,
            play_test_tone,
            set_level_meter,
        ])
        .typ::<Event>()
        .typ::<InputLevel>()
        .typ::<DeepLink>()
}

/// Writes the TypeScript bindings (CI checks the committed file is up to date).
pub fn export_bindings(path: &str) -> Result<(), String> {
    let typescript = specta_typescript::Typescript::default()
        .header("// Generated by `homeagent-desktop --export-bindings`: do not edit.\n");
    builder()
        .export(typescript, path)
        .map_err(|e| e.to_string())
}
