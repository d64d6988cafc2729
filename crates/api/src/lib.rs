//! The app-facing API: the one surface the CLI, the desktop shell and the tests use.
//!
//! Start a [`Phone`] with a [`PhoneSettings`], send it [`Command`]s, read [`Event`]s. Events
//! serialise to one JSON object each (`{"event":"established",...}`): the CLI prints them with
//! `--json` and the desktop shell forwards them to the UI unchanged.
#![forbid(unsafe_code)]

mod app_config;
mod device_check;
mod device_watch;
mod dto;
mod history;
mod secrets;
mod training;
mod workflow;

pub use app_config::{
    AppConfig, ConfigError, ConfigPaths, Disposition, UserSettings, choose_device,
    save_user_settings,
};
pub use device_check::{SILENCE_DBFS, level_dbfs, meter_input, play_test_tone, ring};
pub use device_watch::{DeviceUpdate, DeviceWatch};
pub use dto::{AgentChoice, CallStats, Command, ContextFields, ContextRow, ErrorCode, Event};
pub use history::{CallHistory, CallResult, Direction, HistoryEntry, mask_number, party_number};
pub use homeagent_context::{ContextConfig, FieldMapping};
pub use homeagent_engine::core::{AnswerMode, SrtpPolicy};
pub use homeagent_engine::{
    AudioDevice, IceMode, PhoneSettings, SettingsError, SinkSpec, SourceSpec, TurnSettings,
    list_audio_devices, list_preferred_audio_devices,
};
pub use secrets::{KEYCHAIN_SERVICE, SecretError, account_key, load_password, store_password};
pub use training::{TrainingCrm, TrainingLine, TrainingSettings};
pub use workflow::WorkflowSettings;

use homeagent_engine::{Engine, EngineCommand};
use tokio::sync::mpsc;

/// A running phone. Dropping it stops the engine (without unregistering: send
/// [`Command::Shutdown`] and wait for [`Event::Stopped`] for a clean exit).
#[derive(Debug)]
pub struct Phone {
    commands: mpsc::Sender<EngineCommand>,
    events: mpsc::Receiver<homeagent_engine::EngineEvent>,
    /// What the workflow reports (context, wrap-ups), merged into the events.
    side: mpsc::Receiver<Event>,
    workflow: Option<workflow::WorkflowLink>,
}

/// The phone could not start (socket in use, bad settings, …).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub code: ErrorCode,
    pub message: String,
}

/// Sends commands to a [`Phone`] from anywhere.
#[derive(Debug, Clone)]
pub struct Commander {
    engine: mpsc::Sender<EngineCommand>,
    workflow: Option<mpsc::Sender<workflow::Observation>>,
}

impl Commander {
    /// Queues a command; `false` when the engine has stopped.
    pub async fn send(&self, command: Command) -> bool {
        if let (
            Command::Wrapup {
                call,
                disposition,
                note,
            },
            Some(workflow),
        ) = (&command, &self.workflow)
        {
            let wrapup = workflow::Observation::Wrapup {
                call: *call,
                disposition: disposition.clone(),
                note: note.clone(),
            };
            return workflow.send(wrapup).await.is_ok();
        }
        self.engine.send(command.into_engine()).await.is_ok()
    }
}

impl Phone {
    /// Binds the sockets and starts the engine on the current tokio runtime.
    pub async fn start(settings: PhoneSettings) -> Result<Self, StartError> {
        let engine = Engine::start(settings).await.map_err(|e| StartError {
            code: ErrorCode::from_engine(&e),
            message: e.to_string(),
        })?;
        let (commands, events) = engine.into_channels();
        let (_, side) = mpsc::channel(1);
        Ok(Self {
            commands,
            events,
            side,
            workflow: None,
        })
    }

    /// Starts the contact-center workflow (customer context, platform, wrap-ups) beside the
    /// phone; its events join [`Self::next_event`].
    pub fn with_workflow(mut self, settings: WorkflowSettings) -> Self {
        if !settings.is_active() {
            return self;
        }
        let (events, side) = mpsc::channel(256);
        self.side = side;
        self.workflow = Some(workflow::spawn(settings, events, self.commands.clone()));
        self
    }

    /// Queues a command. Fails only when the engine has stopped.
    pub async fn send(&self, command: Command) -> Result<(), StartError> {
        self.commands
            .send(command.into_engine())
            .await
            .map_err(|_| StartError {
                code: ErrorCode::Stopped,
                message: "the phone engine has stopped".to_owned(),
            })
    }

    /// A cloneable handle that sends commands (for timers and other tasks).
    pub fn commander(&self) -> Commander {
        Commander {
            engine: self.commands.clone(),
            workflow: self.workflow.as_ref().map(|w| w.observations.clone()),
        }
    }

    /// The next event; `None` once the engine has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        tokio::select! {
            biased;
            Some(event) = self.side.recv() => Some(event),
            event = self.events.recv() => {
                let event = event?;
                if let Some(workflow) = &self.workflow {
                    observe(&workflow.observations, &event).await;
                }
                let event = Event::from(event);
                if let (Event::Stopped, Some(workflow)) = (&event, &self.workflow) {
                    // The agent leaves: the platform is told before the front end exits.
                    let (done, logged_out) = tokio::sync::oneshot::channel();
                    if workflow.observations.send(workflow::Observation::Stopped(done)).await.is_ok() {
                        let _ = tokio::time::timeout(LOGOUT_GRACE, logged_out).await;
                    }
                }
                Some(event)
            }
        }
    }
}

/// The longest wait for the platform's logout when the phone stops.
const LOGOUT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Tells the workflow what it needs of an engine event (waits when it is busy: a call's end
/// must never be lost, its wrap-up depends on it).
async fn observe(
    workflow: &mpsc::Sender<workflow::Observation>,
    event: &homeagent_engine::EngineEvent,
) {
    use homeagent_engine::EngineEvent as E;
    use homeagent_engine::core::PhoneEvent as P;
    let observation = match event {
        E::Phone(P::Incoming {
            call,
            from,
            to,
            headers,
        }) => workflow::Observation::Incoming {
            call: u32::try_from(call.0).unwrap_or(u32::MAX),
            from: from.clone(),
            to: to.clone(),
            headers: headers.clone(),
        },
        E::Phone(P::Answered { call, .. }) => workflow::Observation::Answered {
            call: u32::try_from(call.0).unwrap_or(u32::MAX),
        },
        E::Ended { call, .. } => workflow::Observation::Ended {
            call: u32::try_from(call.0).unwrap_or(u32::MAX),
        },
        E::Phone(P::AgentState { state }) => workflow::Observation::AgentState(state.clone()),
        _ => return,
    };
    if workflow.send(observation).await.is_err() {
        tracing::warn!("the workflow has stopped");
    }
}

/// Shows phone numbers and SIP URIs unredacted in logs (only when debug logging is explicitly
/// enabled by the user).
pub fn reveal_personal_data(on: bool) {
    homeagent_engine::core::Pii::reveal(on);
}
