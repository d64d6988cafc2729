//! Starting the phone, holding it for the commands, and forwarding its events to the window.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use homeagent_api::{
    AnswerMode, AppConfig, CallHistory, Command, Commander, ConfigPaths, DeviceWatch, Event,
    HistoryEntry, Phone, PhoneSettings, TrainingCrm, TrainingLine, TrainingSettings, UserSettings,
};
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;

use crate::commands::{self, AppInfo, Mode, SecretKind};

/// How long the exit waits for the phone to hang up, unregister and log out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What the commands reach through `State<Shell>`.
pub struct Shell {
    pub info: AppInfo,
    commander: Commander,
    history: Arc<Mutex<CallHistory>>,
    replay: Arc<Mutex<Replay>>,
    paths: ConfigPaths,
    config: Arc<Mutex<AppConfig>>,
    devices: Arc<Mutex<DeviceWatch>>,
    pub meter: Mutex<Option<Arc<AtomicBool>>>,
    /// Becomes true once the phone has stopped (unregistered, hung up, logged out).
    stopped: tokio::sync::watch::Receiver<bool>,
    /// The app is on its way out (the phone is stopping).
    exiting: AtomicBool,
    /// Kept alive for the app's lifetime in demo mode.
    _training: Option<TrainingLine>,
    _training_crm: Option<TrainingCrm>,
}

impl Shell {
    pub async fn send(&self, command: Command) -> Result<(), String> {
        if let Command::Decline { call } = command {
            self.history
                .lock()
                .map_err(|_| "history lock poisoned")?
                .declined(call);
        }
        if self.commander.send(command).await {
            Ok(())
        } else {
            Err("the phone engine has stopped".to_owned())
        }
    }

    pub fn user_settings(&self) -> UserSettings {
        self.config
            .lock()
            .map(|c| c.user_settings())
            .unwrap_or_else(|_| AppConfig::default().user_settings())
    }

    /// Writes the user layer and reloads the merged configuration. A new microphone or
    /// speaker applies at once, to a call in progress too; processing switches apply to the
    /// next call.
    pub async fn save_settings(&self, settings: &UserSettings) -> Result<(), String> {
        homeagent_api::save_user_settings(&self.paths.user, settings).map_err(|e| e.to_string())?;
        let config = AppConfig::load(&self.paths).map_err(|e| e.to_string())?;
        let switch = self
            .devices
            .lock()
            .map_err(|_| "device lock poisoned")?
            .reapply(&config);
        *self.config.lock().map_err(|_| "settings lock poisoned")? = config;
        if let Some(switch) = switch {
            self.send(switch).await?;
        }
        Ok(())
    }

    /// Saves the SIP password of the configured account in the OS keychain (used from the
    /// next start).
    pub async fn save_secret(&self, kind: SecretKind, value: &str) -> Result<(), String> {
        let entry = {
            let config = self.config.lock().map_err(|_| "settings lock poisoned")?;
            secret_entry(&config, kind)?
        };
        homeagent_api::store_password(&entry, value)
            .await
            .map_err(|e| e.to_string())
    }

    /// The events a window that opens now needs to show the current state.
    pub fn recent_events(&self) -> Vec<Event> {
        self.replay.lock().map(|r| r.events()).unwrap_or_default()
    }

    pub fn history(&self) -> Vec<HistoryEntry> {
        self.history.lock().map(|h| h.entries()).unwrap_or_default()
    }
}

pub fn run() {
    init_logging();
    let builder = commands::builder();
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(builder.invoke_handler())
        .setup(move |app| {
            builder.mount_events(app);
            listen_for_other_instances(app.handle().clone());
            exit_on_termination_signal(app.handle().clone());
            let shell = tauri::async_runtime::block_on(start(app.handle().clone()))?;
            app.manage(shell);
            tray(app)?;
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(error) => {
            eprintln!("homeagent-desktop: cannot start: {error}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::ExitRequested { api, .. } = event
            && let Some(shell) = handle.try_state::<Shell>()
            && !shell.exiting.swap(true, Ordering::SeqCst)
        {
            // Hang up, unregister and log out of the platform before the process ends, for
            // at most SHUTDOWN_GRACE (a platform that does not answer must not hold the exit).
            // The event loop keeps running meanwhile (the phone's events still reach the
            // window); then the exit is asked for again and goes through.
            api.prevent_exit();
            let commander = shell.commander.clone();
            let mut stopped = shell.stopped.clone();
            let handle = handle.clone();
            tauri::async_runtime::spawn(async move {
                commander.send(Command::Shutdown).await;
                if tokio::time::timeout(SHUTDOWN_GRACE, stopped.wait_for(|done| *done))
                    .await
                    .is_err()
                {
                    tracing::warn!("exit: the phone did not stop in {SHUTDOWN_GRACE:?}");
                }
                handle.exit(0);
            });
        }
    });
}

/// SIGTERM (system shutdown, session logout, IT's tooling) and SIGINT exit like the agent
/// quitting: the call is hung up, the account unregistered and the platform told.
fn exit_on_termination_signal(app: AppHandle) {
    #[cfg(unix)]
    tauri::async_runtime::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot watch termination signals");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("termination signal: exiting");
        app.exit(0);
    });
    #[cfg(not(unix))]
    let _ = app;
}

fn init_logging() {
    let filter = std::env::var("HOMEAGENT_LOG").unwrap_or_else(|_| "warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Starts the phone from the layered configuration: live when a registrar is configured,
/// else on the training line.
async fn start(app: AppHandle) -> Result<Shell, Box<dyn std::error::Error>> {
    let paths = ConfigPaths::from_env();
    // What the agent must be told once the window shows (replayed to it at start).
    let mut warnings = Vec::new();
    let config = match AppConfig::load(&paths) {
        Ok(config) => config,
        Err(error) => {
            // A broken file must not leave the agent without a window: say why, run the demo.
            tracing::error!(%error, "configuration");
            warnings.push(format!("configuration ignored: {error}"));
            AppConfig::default()
        }
    };
    let demo = config.is_demo();
    let devices = list_devices().await;
    let (inputs, outputs) = device_names(&devices);
    let mut phone = config.phone_settings(&inputs, &outputs)?;
    // The watch polls the preferred sound host only: it starts from that host's devices.
    let (watched_inputs, watched_outputs) = device_names(&preferred_devices().await);
    let device_watch = Arc::new(Mutex::new(DeviceWatch::new(
        &config,
        watched_inputs,
        watched_outputs,
    )));
    phone.password = match std::env::var("HOMEAGENT_PASSWORD") {
        Ok(password) => Some(password),
        Err(_) if !demo => keychain_password(&config).await.unwrap_or_else(|warning| {
            warnings.push(warning);
            None
        }),
        Err(_) => None,
    };
    if demo {
        phone = PhoneSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            registrar: None,
            ..phone
        };
    }
    phone.answer = AnswerMode::Manual;
    if !demo {
        phone.turn = turn_settings(&config, &mut warnings).await;
    }
    let mut workflow = workflow_settings(&config, &mut warnings).await;
    // Training mode: a local customer database answers the card's lookups; wrap-ups stay in a
    // throwaway outbox (there is no platform to deliver them to).
    let training_crm = if demo {
        let crm = TrainingCrm::start().await?;
        workflow.context = Some(homeagent_api::ContextConfig {
            url_template: crm.url_template(),
            ..Default::default()
        });
        workflow.outbox = std::env::temp_dir()
            .join(format!("homeagent-training-{}", std::process::id()))
            .join("outbox.sqlite");
        Some(crm)
    } else {
        None
    };
    let mut agent = Phone::start(phone).await?.with_workflow(workflow);
    let commander = agent.commander();
    let mut training = None;
    if demo {
        // The first event is Ready with the bound address.
        if let Some(Event::Ready { sip }) = agent.next_event().await {
            let address: SocketAddr = sip.parse()?;
            let settings = TrainingSettings {
                first_call: env_seconds("HOMEAGENT_DEMO_FIRST_CALL", 3.0),
                every: env_seconds("HOMEAGENT_DEMO_EVERY", 15.0),
                length: env_seconds("HOMEAGENT_DEMO_LENGTH", 30.0),
                voice: Some(training_voice()),
            };
            training = Some(TrainingLine::start(address, settings).await?);
        }
    }
    let history = Arc::new(Mutex::new(CallHistory::default()));
    let config = Arc::new(Mutex::new(config));
    tauri::async_runtime::spawn(watch_devices(
        app.clone(),
        commander.clone(),
        config.clone(),
        device_watch.clone(),
    ));
    let wrapups = demo || config.lock().is_ok_and(|c| !c.dispositions().is_empty());
    let replay = Arc::new(Mutex::new(Replay::new(warnings, wrapups)));
    let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
    tauri::async_runtime::spawn(forward_events(
        app.clone(),
        agent,
        Observers {
            history: history.clone(),
            replay: replay.clone(),
            config: config.clone(),
            stopped: stopped_tx,
        },
    ));
    let (user, registrar) = config
        .lock()
        .map(|c| (c.user.clone(), c.registrar.clone()))
        .unwrap_or_default();
    let account = (!demo).then(|| {
        let host = registrar.as_deref().map(homeagent_api::party_number);
        match (user.as_deref(), host) {
            (Some(user), Some(host)) => format!("{user}@{host}"),
            (Some(user), None) => user.to_owned(),
            (None, host) => host.unwrap_or_default(),
        }
    });
    let workflow_info = config
        .lock()
        .map(|c| commands::WorkflowInfo {
            not_ready_reasons: c.not_ready_reasons(),
            dispositions: if demo && c.dispositions().is_empty() {
                training_dispositions()
            } else {
                c.dispositions()
            },
            wrapup_seconds: c.wrapup_time.filter(|s| *s > 0.0),
            secrets: wanted_secrets(&c),
        })
        .unwrap_or_default();
    let info = AppInfo {
        workflow: workflow_info,
        mode: if demo { Mode::Demo } else { Mode::Live },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        account,
        locale: os_locale(),
        deep_link: std::env::args()
            .skip(1)
            .find_map(|arg| deep_link_number(&arg)),
    };
    Ok(Shell {
        info,
        commander,
        history,
        replay,
        paths,
        config,
        devices: device_watch,
        meter: Mutex::new(None),
        stopped,
        exiting: AtomicBool::new(false),
        _training: training,
        _training_crm: training_crm,
    })
}

/// The account's password from the OS keychain, or what to tell the agent (the phone still
/// starts and registration then fails with the platform's answer).
/// Wrap-up codes offered on the training line when IT configured none.
fn training_dispositions() -> Vec<homeagent_api::Disposition> {
    [
        ("VENTE", "Vente"),
        ("INFO", "Demande d'information"),
        ("RAPPEL", "Rappel à planifier"),
    ]
    .into_iter()
    .map(|(code, label)| homeagent_api::Disposition {
        code: code.to_owned(),
        label: label.to_owned(),
    })
    .collect()
}

/// The keychain entry of a credential: `user@registrar-host` for the SIP password,
/// `context:AGENT` / `platform:AGENT` for the contact-center services' ones.
fn secret_entry(config: &AppConfig, kind: SecretKind) -> Result<String, String> {
    if config.is_demo() {
        return Err("no account is configured (training mode)".to_owned());
    }
    let agent = || config.agent.as_deref().unwrap_or("agent");
    match kind {
        SecretKind::Sip => match (&config.user, &config.registrar) {
            (Some(user), Some(registrar)) => Ok(homeagent_api::account_key(user, registrar)),
            _ => Err("no SIP account is configured".to_owned()),
        },
        SecretKind::Context if config.context_auth_header.is_some() => {
            Ok(format!("context:{}", agent()))
        }
        SecretKind::Platform if config.platform_api.is_some() => {
            Ok(format!("platform:{}", agent()))
        }
        SecretKind::Turn if config.turn.is_some() => Ok(format!("turn:{}", turn_user(config))),
        _ => Err(format!("{kind:?} is not configured: no credential to keep")),
    }
}

/// The credentials the configured services need.
fn wanted_secrets(config: &AppConfig) -> Vec<SecretKind> {
    [
        SecretKind::Sip,
        SecretKind::Context,
        SecretKind::Platform,
        SecretKind::Turn,
    ]
    .into_iter()
    .filter(|kind| secret_entry(config, *kind).is_ok())
    .collect()
}

/// The contact-center workflow as configured, its secrets from the environment (scripted
/// setups) or the OS keychain (see [`secret_entry`]).
async fn workflow_settings(
    config: &AppConfig,
    warnings: &mut Vec<String>,
) -> homeagent_api::WorkflowSettings {
    let mut secrets = HashMap::new();
    for (name, variable, kind, wanted) in [
        (
            "context",
            "HOMEAGENT_CONTEXT_AUTH",
            SecretKind::Context,
            config.context_auth_header.is_some(),
        ),
        (
            "platform",
            "HOMEAGENT_PLATFORM_TOKEN",
            SecretKind::Platform,
            config.platform_api.is_some(),
        ),
    ] {
        if !wanted {
            continue;
        }
        let value =
            match (std::env::var(variable), secret_entry(config, kind)) {
                (Ok(value), _) => Some(value),
                (Err(_), Err(_)) => None,
                (Err(_), Ok(account)) => homeagent_api::load_password(&account)
                    .await
                    .unwrap_or_else(|error| {
                        warnings.push(format!("{name} credential: {error}"));
                        None
                    }),
            };
        if let Some(value) = value {
            secrets.insert(name, value);
        }
    }
    config
        .workflow_settings(|name| secrets.get(name).cloned())
        .unwrap_or_else(|error| {
            warnings.push(format!("contact-center settings ignored: {error}"));
            homeagent_api::WorkflowSettings::default()
        })
}

fn turn_user(config: &AppConfig) -> &str {
    config
        .turn_user
        .as_deref()
        .or(config.user.as_deref())
        .unwrap_or("agent")
}

/// The TURN server as configured, its password from `HOMEAGENT_TURN_PASSWORD` or the
/// keychain; without a password the calls go without a relay (and a warning says why).
async fn turn_settings(
    config: &AppConfig,
    warnings: &mut Vec<String>,
) -> Option<homeagent_api::TurnSettings> {
    let uri = config.turn.clone()?;
    let probe = homeagent_api::TurnSettings {
        uri: uri.clone(),
        username: String::new(),
        password: String::new(),
    };
    if let Err(error) = probe.host_port() {
        warnings.push(format!("TURN ignored: {error}"));
        return None;
    }
    let password = match std::env::var("HOMEAGENT_TURN_PASSWORD") {
        Ok(password) => Some(password),
        Err(_) => {
            let entry = secret_entry(config, SecretKind::Turn).ok()?;
            homeagent_api::load_password(&entry)
                .await
                .unwrap_or_else(|error| {
                    warnings.push(format!("TURN credential: {error}"));
                    None
                })
        }
    };
    let Some(password) = password else {
        warnings.push("no TURN password saved: enter it in the settings".to_owned());
        return None;
    };
    Some(homeagent_api::TurnSettings {
        uri,
        username: turn_user(config).to_owned(),
        password,
    })
}

async fn keychain_password(config: &AppConfig) -> Result<Option<String>, String> {
    let account = homeagent_api::account_key(
        config.user.as_deref().unwrap_or_default(),
        config.registrar.as_deref().unwrap_or_default(),
    );
    match homeagent_api::load_password(&account).await {
        Ok(Some(password)) => Ok(Some(password)),
        Ok(None) => Err("no SIP password saved for this account: enter it in the settings".into()),
        Err(error) => Err(error.to_string()),
    }
}

/// The last registration event and the events of the calls still going (and, with wrap-ups,
/// of the answered calls whose wrap-up is still open): replayed to a window that (re)loads
/// after they happened (the phone registers before the UI listens).
#[derive(Debug, Default)]
struct Replay {
    /// Warnings from the start (configuration, keychain).
    startup: Vec<Event>,
    registration: Option<Event>,
    agent_state: Option<Event>,
    calls: Vec<Event>,
    /// Dispositions are configured: an answered call's wrap-up form outlives the call.
    wrapups: bool,
}

/// Ended calls whose open wrap-up a reloaded window gets back (the oldest are dropped).
const REPLAYED_WRAPUPS: usize = 8;

impl Replay {
    fn new(warnings: Vec<String>, wrapups: bool) -> Self {
        Self {
            startup: warnings
                .into_iter()
                .map(|message| Event::Warning { message })
                .collect(),
            wrapups,
            ..Self::default()
        }
    }

    fn observe(&mut self, event: &Event) {
        match event {
            Event::Registering { .. }
            | Event::Registered { .. }
            | Event::RegistrationFailed { .. }
            | Event::Unregistered => self.registration = Some(event.clone()),
            Event::AgentState { .. } => self.agent_state = Some(event.clone()),
            Event::Ended { call, .. } => {
                let answered = self
                    .calls
                    .iter()
                    .any(|e| matches!(e, Event::Answered { call: c, .. } if c == call));
                if self.wrapups && answered {
                    self.calls.push(event.clone());
                    self.drop_oldest_wrapups();
                } else {
                    self.calls.retain(|e| e.call() != Some(*call));
                }
            }
            // Safe in the outbox: the form is done, the customer's data leaves.
            Event::WrapupQueued { call, .. } => self.calls.retain(|e| e.call() != Some(*call)),
            // Figures of the moment: the next report comes within seconds.
            Event::Quality { .. } => {}
            other if other.call().is_some() => self.calls.push(other.clone()),
            _ => {}
        }
    }

    fn drop_oldest_wrapups(&mut self) {
        let ended: Vec<u32> = self
            .calls
            .iter()
            .filter_map(|e| match e {
                Event::Ended { call, .. } => Some(*call),
                _ => None,
            })
            .collect();
        for call in ended
            .iter()
            .take(ended.len().saturating_sub(REPLAYED_WRAPUPS))
        {
            self.calls.retain(|e| e.call() != Some(*call));
        }
    }

    fn events(&self) -> Vec<Event> {
        self.startup
            .iter()
            .chain(&self.registration)
            .chain(&self.agent_state)
            .chain(&self.calls)
            .cloned()
            .collect()
    }
}

/// What the event pump keeps up to date besides the window.
struct Observers {
    history: Arc<Mutex<CallHistory>>,
    replay: Arc<Mutex<Replay>>,
    config: Arc<Mutex<AppConfig>>,
    stopped: tokio::sync::watch::Sender<bool>,
}

async fn forward_events(app: AppHandle, mut phone: Phone, observers: Observers) {
    let Observers {
        history,
        replay,
        config,
        stopped,
    } = observers;
    // Calls ringing on the ringer device, and how to stop each.
    let mut ringing: HashMap<u32, Arc<AtomicBool>> = HashMap::new();
    while let Some(event) = phone.next_event().await {
        match &event {
            Event::Incoming { call, .. } => {
                let stop = Arc::new(AtomicBool::new(false));
                ringing.insert(*call, stop.clone());
                start_ringer(&app, &config, stop);
            }
            Event::Answered { call, .. }
            | Event::Established { call, .. }
            | Event::Ended { call, .. } => {
                if let Some(stop) = ringing.remove(call) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let added = history
            .lock()
            .map(|mut h| h.observe(&event, now_ms))
            .unwrap_or(false);
        if let Ok(mut replay) = replay.lock() {
            replay.observe(&event);
        }
        if let Event::Incoming { from, .. } = &event {
            alert_incoming(&app, from);
        }
        if let Err(error) = app.emit(commands::PHONE_EVENT, &event) {
            tracing::warn!(%error, "cannot forward a phone event");
        }
        if added {
            let _ = app.emit(commands::HISTORY_CHANGED, ());
        }
        if let Event::Ended { .. } = &event {
            set_tray_tooltip(&app, "Homeagent");
        }
        if let Event::Stopped = &event {
            stopped.send_replace(true);
        }
    }
    stopped.send_replace(true);
}

/// Rings on the ringer device (the configured one, else by the preference rules, else the
/// default output) until `stop`; a device that fails is reported once as a warning.
fn start_ringer(app: &AppHandle, config: &Arc<Mutex<AppConfig>>, stop: Arc<AtomicBool>) {
    let config = config.lock().map(|c| c.clone()).unwrap_or_default();
    let app = app.clone();
    std::thread::spawn(move || {
        let outputs: Vec<String> = homeagent_api::list_audio_devices()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.output)
            .map(|d| d.name)
            .collect();
        let device = config.ringer_device(&outputs);
        if let Err(error) = homeagent_api::ring(device.as_deref(), &stop) {
            let message = format!("cannot ring on the ringer device: {error}");
            let _ = app.emit(commands::PHONE_EVENT, Event::Warning { message });
        }
    });
}

/// A call rings: bring the window forward, notify, mark the tray.
fn alert_incoming(app: &AppHandle, from: &str) {
    let caller = homeagent_api::mask_number(&homeagent_api::party_number(from));
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.request_user_attention(Some(tauri::UserAttentionType::Critical));
    }
    let shown = app
        .notification()
        .builder()
        .title("Appel entrant / Incoming call")
        .body(caller)
        .show();
    if let Err(error) = shown {
        tracing::debug!(%error, "no desktop notification");
    }
    set_tray_tooltip(app, "Homeagent — appel entrant");
}

const TRAY_ID: &str = "main";

fn tray(app: &mut tauri::App) -> tauri::Result<()> {
    let mut tray = tauri::tray::TrayIconBuilder::with_id(TRAY_ID).tooltip("Homeagent");
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.on_tray_icon_event(|tray, event| {
        if let tauri::tray::TrayIconEvent::Click { .. } = event
            && let Some(window) = tray.app_handle().get_webview_window("main")
        {
            let _ = window.unminimize();
            let _ = window.show();
            let _ = window.set_focus();
        }
    })
    .build(app)?;
    Ok(())
}

fn set_tray_tooltip(app: &AppHandle, text: &str) {
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(text));
    }
}

/// Where the running app listens for later launches: `HOMEAGENT_INSTANCE_SOCKET`, else in
/// `$XDG_RUNTIME_DIR` (per user, private); without either, no single-instance hand-over.
fn instance_socket() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HOMEAGENT_INSTANCE_SOCKET") {
        return Some(PathBuf::from(path));
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR")?;
    Some(PathBuf::from(dir).join("homeagent-desktop.sock"))
}

/// When an instance already runs: sends it this launch's `tel:`/`sip:` link (or asks it to
/// show its window) and returns true.
#[cfg(unix)]
pub fn hand_over_to_running_instance() -> bool {
    use std::io::Write;
    let Some(path) = instance_socket() else {
        return false;
    };
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&path) else {
        return false;
    };
    let message = match std::env::args()
        .skip(1)
        .find_map(|arg| deep_link_number(&arg))
    {
        Some(number) => format!("dial {number}\n"),
        None => "show\n".to_owned(),
    };
    stream.write_all(message.as_bytes()).is_ok()
}

#[cfg(not(unix))]
pub fn hand_over_to_running_instance() -> bool {
    false
}

/// Listens for later launches (see [`hand_over_to_running_instance`]): shows the window and
/// forwards a link to the dial pad (`deep-link`).
#[cfg(unix)]
fn listen_for_other_instances(app: AppHandle) {
    use std::io::{BufRead, Read};
    let Some(path) = instance_socket() else {
        return;
    };
    // Nobody answered on it (see `main`): a socket left by a crashed instance.
    let _ = std::fs::remove_file(&path);
    let listener = match std::os::unix::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "no single-instance socket");
            return;
        }
    };
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A launch writes its one line at once; a silent client must not block the others.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut line = String::new();
            let mut reader = std::io::BufReader::new(stream.take(1024));
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.set_focus();
            }
            if let Some(number) = line.trim().strip_prefix("dial ") {
                let number = number.to_owned();
                let _ = app.emit(commands::DEEP_LINK, commands::DeepLink { number });
            }
        }
    });
}

#[cfg(not(unix))]
fn listen_for_other_instances(_app: AppHandle) {}

/// A `tel:`, `callto:` or `sip:` link: the number (or SIP URI) to pre-fill the dial pad with.
fn deep_link_number(arg: &str) -> Option<String> {
    let lower = arg.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return Some(arg.to_owned());
    }
    let rest = ["tel:", "callto:"]
        .iter()
        .find_map(|scheme| lower.starts_with(scheme).then(|| &arg[scheme.len()..]))?;
    let number: String = rest
        .split(';')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
        .collect();
    (!number.is_empty()).then_some(number)
}

/// `LC_ALL`, `LC_MESSAGES` or `LANG` (`fr_FR.UTF-8` gives `fr-FR`); French when unset.
fn os_locale() -> String {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty() && value != "C" && value != "POSIX")
        .map(|value| {
            value
                .split('.')
                .next()
                .unwrap_or_default()
                .replace('_', "-")
        })
        .unwrap_or_else(|| "fr-FR".to_owned())
}

/// Lists the sound devices every few seconds: the window's lists follow, and a headset plugged
/// in or pulled out re-applies the preference rules, to a call in progress too.
async fn watch_devices(
    app: AppHandle,
    commander: Commander,
    config: Arc<Mutex<AppConfig>>,
    watch: Arc<Mutex<DeviceWatch>>,
) {
    let every = env_seconds("HOMEAGENT_DEVICE_POLL", 2.0);
    loop {
        tokio::time::sleep(every).await;
        let devices = preferred_devices().await;
        if devices.is_empty() {
            // No sound server reachable right now: keep the last route.
            continue;
        }
        let (inputs, outputs) = device_names(&devices);
        let Ok(config) = config.lock().map(|c| c.clone()) else {
            return;
        };
        let Ok(update) = watch.lock().map(|mut w| w.update(&config, inputs, outputs)) else {
            return;
        };
        if update.devices_changed {
            // The window lists every host's devices, as `list_devices` does.
            let all = commands::audio_devices(list_devices().await);
            let _ = app.emit(commands::DEVICES_CHANGED, all);
        }
        if let Some(switch) = update.switch {
            tracing::info!(?switch, "sound devices changed");
            if !commander.send(switch).await {
                return;
            }
        }
    }
}

async fn preferred_devices() -> Vec<homeagent_api::AudioDevice> {
    tauri::async_runtime::spawn_blocking(homeagent_api::list_preferred_audio_devices)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

async fn list_devices() -> Vec<homeagent_api::AudioDevice> {
    tauri::async_runtime::spawn_blocking(homeagent_api::list_audio_devices)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

fn device_names(devices: &[homeagent_api::AudioDevice]) -> (Vec<String>, Vec<String>) {
    let names = |pick: fn(&homeagent_api::AudioDevice) -> bool| {
        devices
            .iter()
            .filter(|d| pick(d))
            .map(|d| d.name.clone())
            .collect()
    };
    (names(|d| d.input), names(|d| d.output))
}

/// The training customer's voice: `HOMEAGENT_TRAINING_VOICE`, else the bundled resource when
/// installed, else the repository's reference speech (a tone if none is there).
fn training_voice() -> PathBuf {
    if let Some(path) = std::env::var_os("HOMEAGENT_TRAINING_VOICE") {
        return PathBuf::from(path);
    }
    let installed = Path::new("/usr/share/homeagent/training-voice.wav");
    if installed.is_file() {
        return installed.to_owned();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/speech16k.wav")
}

fn env_seconds(name: &str, default: f64) -> Duration {
    let seconds = std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_links_give_the_number_to_dial() {
        assert_eq!(
            deep_link_number("tel:+33-6-12-34-56-78").as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            deep_link_number("TEL:0612345678;phone-context=x").as_deref(),
            Some("0612345678")
        );
        assert_eq!(deep_link_number("callto:0612").as_deref(), Some("0612"));
        assert_eq!(
            deep_link_number("sip:alice@pbx.example.com").as_deref(),
            Some("sip:alice@pbx.example.com")
        );
        assert_eq!(deep_link_number("tel:"), None);
        assert_eq!(deep_link_number("--verbose"), None);
        assert_eq!(deep_link_number("https://example.com"), None);
    }

    #[test]
    fn a_configured_turn_server_asks_for_its_password_in_the_keychain() {
        let config = AppConfig {
            registrar: Some("sip:pbx.example.com".into()),
            user: Some("agent01".into()),
            ..AppConfig::default()
        };
        assert!(!wanted_secrets(&config).contains(&SecretKind::Turn));
        let config = AppConfig {
            turn: Some("turn:relay.example.com".into()),
            ..config
        };
        assert!(wanted_secrets(&config).contains(&SecretKind::Turn));
        assert_eq!(
            secret_entry(&config, SecretKind::Turn).as_deref(),
            Ok("turn:agent01")
        );
        let config = AppConfig {
            turn_user: Some("relay-user".into()),
            ..config
        };
        assert_eq!(
            secret_entry(&config, SecretKind::Turn).as_deref(),
            Ok("turn:relay-user")
        );
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    #[test]
    fn replay_keeps_the_registration_and_the_live_calls_only() {
        let mut replay = Replay::new(vec!["no SIP password saved".into()], false);
        for event in [
            Event::Registering {
                registrar: String::new(),
            },
            Event::Registered { expires: 600 },
            Event::Incoming {
                call: 1,
                from: "sip:alice@pbx".into(),
                to: "sip:agent@pbx".into(),
            },
            Event::Incoming {
                call: 2,
                from: "sip:bob@pbx".into(),
                to: "sip:agent@pbx".into(),
            },
            Event::Answered {
                call: 2,
                auto: false,
            },
            Event::Ended {
                call: 1,
                reason: "remote_cancelled".into(),
                normal: false,
                code: None,
                detail: String::new(),
                stats: Default::default(),
            },
            Event::Warning {
                message: "x".into(),
            },
        ] {
            replay.observe(&event);
        }
        let events = replay.events();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(matches!(&events[0], Event::Warning { message } if message.contains("password")));
        assert_eq!(events[1], Event::Registered { expires: 600 });
        assert!(matches!(events[2], Event::Incoming { call: 2, .. }));
        assert!(matches!(events[3], Event::Answered { call: 2, .. }));
    }

    #[test]
    fn replay_keeps_an_answered_calls_open_wrapup_until_it_is_queued() {
        let ended = |call| Event::Ended {
            call,
            reason: "remote_hangup".into(),
            normal: true,
            code: None,
            detail: String::new(),
            stats: Default::default(),
        };
        let mut replay = Replay::new(Vec::new(), true);
        for call in 1..=2 {
            replay.observe(&Event::Incoming {
                call,
                from: "sip:alice@pbx".into(),
                to: "sip:agent@pbx".into(),
            });
        }
        replay.observe(&Event::Answered {
            call: 2,
            auto: true,
        });
        replay.observe(&ended(1));
        replay.observe(&ended(2));
        // The missed call is gone; the answered one comes back with its end (the form).
        let events = replay.events();
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events.iter().all(|e| e.call() == Some(2)));
        assert!(matches!(events[2], Event::Ended { call: 2, .. }));
        replay.observe(&Event::WrapupQueued {
            call: 2,
            key: "k".into(),
            disposition: "SALE".into(),
        });
        assert!(replay.events().is_empty());
        // Only the latest open wrap-ups are kept.
        for call in 10..30 {
            replay.observe(&Event::Answered { call, auto: true });
            replay.observe(&ended(call));
        }
        let kept: std::collections::BTreeSet<u32> =
            replay.events().iter().filter_map(Event::call).collect();
        assert_eq!(kept, (22..30).collect());
    }
}
