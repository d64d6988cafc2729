//! The contact-center workflow around the phone: the customer's context when a call comes in
//! (screen-pop), the agent's state told to the platform, and wrap-ups queued durably in the
//! outbox and delivered until the platform acknowledges them.
//!
//! It runs as one task beside the engine. [`crate::Phone`] feeds it what happens
//! ([`Observation`]) and merges what it reports ([`Event::Context`], [`Event::WrapupQueued`],
//! [`Event::WrapupDelivered`], warnings) into its event stream. Customer data stays in memory:
//! it is in the events, never in a log or a file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use homeagent_context::{CallInfo, ContextClient, ContextConfig};
use homeagent_engine::EngineCommand;
use homeagent_platform::{DeliveryHandle, HttpPlatform, Outbox, Wrapup};
use tokio::sync::{mpsc, watch};

use crate::{ContextFields, Event};

/// How long a platform API request may take.
const PLATFORM_TIMEOUT: Duration = Duration::from_secs(5);

/// What the workflow does; everything is optional.
#[derive(Clone, Default)]
pub struct WorkflowSettings {
    /// The customer-context lookup (screen-pop) for incoming calls.
    pub context: Option<ContextConfig>,
    /// The platform's HTTP API base URL (`docs/platform-api.yaml`).
    pub platform_api: Option<String>,
    /// Its bearer token (from the keychain or the environment; never logged).
    pub platform_token: Option<String>,
    /// The agent's id on the platform.
    pub agent: String,
    /// Submit this (disposition, note) when each answered call ends.
    pub auto_wrapup: Option<(String, String)>,
    /// The outbox file (SQLite); empty: the default under the user's data directory.
    pub outbox: PathBuf,
}

impl std::fmt::Debug for WorkflowSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowSettings")
            .field("context", &self.context.as_ref().map(|c| &c.url_template))
            .field("platform_api", &self.platform_api)
            .field("agent", &self.agent)
            .field("auto_wrapup", &self.auto_wrapup)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl WorkflowSettings {
    /// Whether there is anything for the workflow to do.
    pub fn is_active(&self) -> bool {
        self.context.is_some() || self.platform_api.is_some() || self.auto_wrapup.is_some()
    }

    fn outbox_path(&self) -> PathBuf {
        if !self.outbox.as_os_str().is_empty() {
            return self.outbox.clone();
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
            })
            .unwrap_or_else(std::env::temp_dir);
        data.join("homeagent").join("outbox.sqlite")
    }
}

/// What the phone tells the workflow.
#[derive(Debug)]
pub(crate) enum Observation {
    Incoming {
        call: u32,
        from: String,
        to: String,
        headers: Vec<(String, String)>,
    },
    Answered {
        call: u32,
    },
    Ended {
        call: u32,
    },
    AgentState(homeagent_engine::core::AgentState),
    Wrapup {
        call: u32,
        disposition: String,
        note: String,
    },
    /// The phone stopped: log out of the platform, then answer.
    Stopped(tokio::sync::oneshot::Sender<()>),
}

/// The workflow's side of the phone: where to send observations.
#[derive(Debug, Clone)]
pub(crate) struct WorkflowLink {
    pub(crate) observations: mpsc::Sender<Observation>,
}

pub(crate) fn spawn(
    settings: WorkflowSettings,
    events: mpsc::Sender<Event>,
    engine: mpsc::Sender<EngineCommand>,
) -> WorkflowLink {
    let (observations, inbox) = mpsc::channel(256);
    let workflow = Workflow {
        context: settings.context.clone().and_then(|config| {
            ContextClient::new(config)
                .map_err(|error| tracing::warn!(%error, "customer context lookup off"))
                .ok()
                .map(Arc::new)
        }),
        platform: settings.platform_api.as_deref().and_then(|url| {
            HttpPlatform::new(
                url,
                &settings.agent,
                settings.platform_token.clone(),
                PLATFORM_TIMEOUT,
            )
            .map_err(|error| tracing::warn!(%error, "platform API off"))
            .ok()
            .map(Arc::new)
        }),
        settings,
        events,
        engine,
        outbox: None,
        delivery: None,
        state_sync: None,
        calls: HashMap::new(),
        expected: 0,
    };
    tokio::spawn(workflow.run(inbox));
    WorkflowLink { observations }
}

/// What the workflow keeps of a call (no customer data).
#[derive(Debug, Default)]
struct CallRecord {
    sip_call_id: Option<String>,
    answered: bool,
}

struct Workflow {
    settings: WorkflowSettings,
    context: Option<Arc<ContextClient>>,
    platform: Option<Arc<HttpPlatform>>,
    events: mpsc::Sender<Event>,
    engine: mpsc::Sender<EngineCommand>,
    outbox: Option<Arc<Outbox>>,
    delivery: Option<DeliveryHandle>,
    state_sync: Option<watch::Sender<Option<homeagent_platform::AgentState>>>,
    calls: HashMap<u32, CallRecord>,
    /// Wrap-ups waiting for delivery, as last known.
    expected: u32,
}

impl Workflow {
    async fn run(mut self, mut inbox: mpsc::Receiver<Observation>) {
        if let Some(platform) = self.platform.clone() {
            if let Err(error) = platform.login().await {
                self.warn(format!("platform login failed: {error}")).await;
            }
            // A supervisor (or the platform) may change the agent's state.
            tokio::spawn(follow_platform_states(
                platform.clone(),
                self.engine.clone(),
            ));
            // Wrap-ups left from an earlier run (crash, reboot, platform down): deliver them.
            if let Some(outbox) = self.open_outbox().await {
                let count = tokio::task::spawn_blocking(move || outbox.pending_count()).await;
                self.expected = count
                    .ok()
                    .and_then(Result::ok)
                    .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
            }
            self.start_delivery().await;
        }
        let mut remaining = self.delivery.as_ref().map(DeliveryHandle::remaining);
        loop {
            tokio::select! {
                observation = inbox.recv() => match observation {
                    Some(observation) => {
                        self.observe(observation).await;
                        if remaining.is_none() {
                            remaining = self.delivery.as_ref().map(DeliveryHandle::remaining);
                        }
                    }
                    None => break,
                },
                changed = wait_changed(&mut remaining) => {
                    let Some(left) = changed else {
                        remaining = None;
                        continue;
                    };
                    let left = u32::try_from(left).unwrap_or(u32::MAX);
                    let delivered = self.expected.saturating_sub(left);
                    self.expected = left;
                    let _ = self.events.send(Event::WrapupDelivered {
                        delivered,
                        pending: left,
                    }).await;
                }
            }
        }
    }

    async fn observe(&mut self, observation: Observation) {
        match observation {
            Observation::Incoming {
                call,
                from,
                to,
                headers,
            } => {
                let sip_call_id = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("Call-ID") || name == "i")
                    .map(|(_, value)| value.clone());
                self.calls.insert(
                    call,
                    CallRecord {
                        sip_call_id,
                        answered: false,
                    },
                );
                if let Some(client) = self.context.clone() {
                    let events = self.events.clone();
                    let info = CallInfo {
                        from: crate::party_number(&from),
                        to: crate::party_number(&to),
                        headers,
                    };
                    tokio::spawn(async move {
                        let event = match client.lookup(&info).await {
                            Ok(context) => {
                                let fields = ContextFields(context.fields);
                                Event::Context {
                                    call,
                                    rows: Some(fields.rows()),
                                    fields: Some(fields),
                                    error: None,
                                }
                            }
                            Err(error) => Event::Context {
                                call,
                                fields: None,
                                rows: None,
                                error: Some(error.to_string()),
                            },
                        };
                        let _ = events.send(event).await;
                    });
                }
            }
            Observation::Answered { call } => {
                self.calls.entry(call).or_default().answered = true;
            }
            Observation::Ended { call } => {
                let answered = self.calls.get(&call).is_some_and(|c| c.answered);
                if !answered {
                    // Nothing to wrap up.
                    self.calls.remove(&call);
                } else if let Some((code, note)) = self.settings.auto_wrapup.clone() {
                    self.wrapup(call, code, note).await;
                }
            }
            Observation::AgentState(state) => {
                if let Some(platform) = self.platform.clone() {
                    // One task tells the platform, in order, the latest state first come.
                    let sync = self.state_sync.get_or_insert_with(|| {
                        let (latest, changes) = watch::channel(None);
                        tokio::spawn(tell_states(platform, changes, self.events.clone()));
                        latest
                    });
                    let _ = sync.send(Some(platform_state(state)));
                }
            }
            Observation::Wrapup {
                call,
                disposition,
                note,
            } => self.wrapup(call, disposition, note).await,
            Observation::Stopped(done) => {
                if let Some(platform) = &self.platform
                    && let Err(error) = platform.logout().await
                {
                    tracing::warn!(%error, "platform logout failed");
                }
                let _ = done.send(());
            }
        }
    }

    /// Stores the wrap-up durably, then has it delivered; ends after-call work.
    async fn wrapup(&mut self, call: u32, disposition: String, note: String) {
        let record = self.calls.remove(&call).unwrap_or_default();
        let call_id = record
            .sip_call_id
            .unwrap_or_else(|| format!("homeagent-call-{call}"));
        let ended_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let wrapup = Wrapup::new(
            call_id,
            &self.settings.agent,
            disposition,
            note,
            ended_at_ms,
        );
        let Some(outbox) = self.open_outbox().await else {
            return;
        };
        let stored = {
            let wrapup = wrapup.clone();
            tokio::task::spawn_blocking(move || outbox.enqueue(&wrapup)).await
        };
        match stored {
            Ok(Ok(())) => {
                self.expected += 1;
                let _ = self
                    .events
                    .send(Event::WrapupQueued {
                        call,
                        key: wrapup.key.clone(),
                        disposition: wrapup.disposition.clone(),
                    })
                    .await;
                self.start_delivery().await;
                if let Some(delivery) = &self.delivery {
                    delivery.kick();
                }
            }
            Ok(Err(error)) => {
                let message = format!("wrap-up not stored: {error}");
                let _ = self
                    .events
                    .send(Event::Error {
                        code: crate::ErrorCode::Internal,
                        message,
                    })
                    .await;
            }
            Err(error) => self.warn(format!("wrap-up not stored: {error}")).await,
        }
        let done = EngineCommand::Phone(homeagent_engine::core::Command::WrapupDone);
        let _ = self.engine.send(done).await;
    }

    async fn open_outbox(&mut self) -> Option<Arc<Outbox>> {
        if let Some(outbox) = &self.outbox {
            return Some(outbox.clone());
        }
        let path = self.settings.outbox_path();
        let opened = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            Outbox::open(&path)
        })
        .await;
        match opened {
            Ok(Ok(outbox)) => {
                let outbox = Arc::new(outbox);
                self.outbox = Some(outbox.clone());
                Some(outbox)
            }
            Ok(Err(error)) => {
                self.warn(format!("wrap-up outbox unavailable: {error}"))
                    .await;
                None
            }
            Err(error) => {
                self.warn(format!("wrap-up outbox unavailable: {error}"))
                    .await;
                None
            }
        }
    }

    async fn start_delivery(&mut self) {
        if self.delivery.is_some() {
            return;
        }
        let Some(platform) = self.platform.clone() else {
            return;
        };
        let Some(outbox) = self.open_outbox().await else {
            return;
        };
        self.delivery = Some(homeagent_platform::spawn_delivery(outbox, platform));
    }

    async fn warn(&self, message: String) {
        tracing::warn!("{message}");
        let _ = self.events.send(Event::Warning { message }).await;
    }
}

/// Tells the platform each agent state, in order (a state superseded while a request was in
/// flight is skipped: the platform only needs the latest).
async fn tell_states(
    platform: Arc<HttpPlatform>,
    mut changes: watch::Receiver<Option<homeagent_platform::AgentState>>,
    events: mpsc::Sender<Event>,
) {
    while changes.changed().await.is_ok() {
        let Some(state) = changes.borrow_and_update().clone() else {
            continue;
        };
        if let Err(error) = platform.set_state(&state).await {
            let message = format!("platform not told the agent's state: {error}");
            let _ = events.send(Event::Warning { message }).await;
        }
    }
}

/// Applies the states the platform pushes (Server-Sent Events), reconnecting with backoff.
async fn follow_platform_states(platform: Arc<HttpPlatform>, engine: mpsc::Sender<EngineCommand>) {
    use homeagent_engine::core::{AgentState as Core, Command as C};
    use homeagent_platform::AgentState as Pushed;
    let mut backoff = Duration::from_secs(1);
    loop {
        if let Ok(mut events) = platform.state_events().await {
            backoff = Duration::from_secs(1);
            while let Ok(Some(state)) = events.next().await {
                let state = match state {
                    Pushed::LoggedOut => Core::LoggedOut,
                    Pushed::Ready => Core::Ready,
                    Pushed::NotReady { reason } => Core::NotReady { reason },
                    // On-call and after-call work follow the calls, here.
                    Pushed::OnCall | Pushed::AfterCallWork => continue,
                };
                if engine
                    .send(EngineCommand::Phone(C::SetAgentState { state }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if engine.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The next value of a watch, `None` once it closed (or there is none: waits forever).
async fn wait_changed(watch: &mut Option<watch::Receiver<usize>>) -> Option<usize> {
    match watch {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => Some(*receiver.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

fn platform_state(state: homeagent_engine::core::AgentState) -> homeagent_platform::AgentState {
    use homeagent_engine::core::AgentState as Core;
    use homeagent_platform::AgentState as S;
    match state {
        Core::LoggedOut => S::LoggedOut,
        Core::Ready => S::Ready,
        Core::NotReady { reason } => S::NotReady { reason },
        Core::OnCall => S::OnCall,
        Core::AfterCallWork => S::AfterCallWork,
    }
}
