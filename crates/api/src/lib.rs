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

pub use app_config::{
    AppConfig, ConfigError, ConfigPaths, UserSettings, choose_device, save_user_settings,
};
pub use device_check::{SILENCE_DBFS, level_dbfs, meter_input, play_test_tone, ring};
pub use device_watch::{DeviceUpdate, DeviceWatch};
pub use dto::{CallStats, Command, ErrorCode, Event};
pub use history::{CallHistory, CallResult, Direction, HistoryEntry, mask_number, party_number};
pub use homeagent_engine::core::AnswerMode;
pub use homeagent_engine::{
    AudioDevice, PhoneSettings, SettingsError, SinkSpec, SourceSpec, list_audio_devices,
};
pub use secrets::{KEYCHAIN_SERVICE, SecretError, account_key, load_password, store_password};
pub use training::{TrainingLine, TrainingSettings};

use homeagent_engine::{Engine, EngineCommand};
use tokio::sync::mpsc;

/// A running phone. Dropping it stops the engine (without unregistering: send
/// [`Command::Shutdown`] and wait for [`Event::Stopped`] for a clean exit).
#[derive(Debug)]
pub struct Phone {
    commands: mpsc::Sender<EngineCommand>,
    events: mpsc::Receiver<homeagent_engine::EngineEvent>,
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
pub struct Commander(mpsc::Sender<EngineCommand>);

impl Commander {
    /// Queues a command; `false` when the engine has stopped.
    pub async fn send(&self, command: Command) -> bool {
        self.0.send(command.into_engine()).await.is_ok()
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
        Ok(Self { commands, events })
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
        Commander(self.commands.clone())
    }

    /// The next event; `None` once the engine has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await.map(Event::from)
    }
}

/// Shows phone numbers and SIP URIs unredacted in logs (only when debug logging is explicitly
/// enabled by the user).
pub fn reveal_personal_data(on: bool) {
    homeagent_engine::core::Pii::reveal(on);
}
