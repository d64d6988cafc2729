//! The training line (demo mode): a simulated customer, a second phone in this process, calls
//! the agent's phone over loopback every so often, talks, and hangs up if the agent has not.
//! No registrar and no network beyond 127.0.0.1: nothing leaves the computer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{Command, Commander, Event, Phone, PhoneSettings, SinkSpec, SourceSpec, StartError};

/// The training customer's SIP user: the caller the agent sees.
pub const TRAINING_CALLER: &str = "client-formation";

/// How often and how long the training customer calls.
#[derive(Debug, Clone)]
pub struct TrainingSettings {
    /// Delay before the first call.
    pub first_call: Duration,
    /// Pause between the end of a call and the next one.
    pub every: Duration,
    /// The customer hangs up after this long if the agent has not.
    pub length: Duration,
    /// What the customer says (a WAV file); a tone when `None` or missing.
    pub voice: Option<PathBuf>,
}

impl Default for TrainingSettings {
    fn default() -> Self {
        Self {
            first_call: Duration::from_secs(2),
            every: Duration::from_secs(10),
            length: Duration::from_secs(20),
            voice: None,
        }
    }
}

/// The running simulated customer. Dropping it stops the calls (a call in progress ends when
/// the agent's phone notices the customer has gone).
#[derive(Debug)]
pub struct TrainingLine {
    task: JoinHandle<()>,
    commander: Commander,
}

impl TrainingLine {
    /// Starts the customer's phone on loopback; it first calls `agent` (the agent phone's SIP
    /// address, from its [`Event::Ready`]) after [`TrainingSettings::first_call`].
    pub async fn start(agent: SocketAddr, settings: TrainingSettings) -> Result<Self, StartError> {
        let voice = settings
            .voice
            .as_ref()
            .filter(|path| path.is_file())
            .map_or(SourceSpec::Tone { hz: 440.0 }, |path| {
                SourceSpec::Wav(path.clone())
            });
        let customer = PhoneSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            registrar: None,
            // What the agent sees as the caller.
            user: Some(TRAINING_CALLER.to_owned()),
            audio_in: voice,
            audio_out: SinkSpec::Null,
            ..PhoneSettings::default()
        };
        let customer = Phone::start(customer).await?;
        let commander = customer.commander();
        let target = format!("sip:agent@{agent}");
        let task = tokio::spawn(drive(customer, target, settings));
        Ok(Self { task, commander })
    }

    /// Hangs up and stops calling.
    pub async fn stop(mut self) {
        self.commander.send(Command::Shutdown).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), &mut self.task).await;
    }
}

impl Drop for TrainingLine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drive(mut customer: Phone, target: String, settings: TrainingSettings) {
    let dial = customer.commander();
    later(
        &dial,
        settings.first_call,
        Command::Call {
            uri: target.clone(),
        },
    );
    while let Some(event) = customer.next_event().await {
        match event {
            Event::Established { call, .. } => {
                later(&dial, settings.length, Command::Hangup { call })
            }
            Event::Ended { .. } => later(
                &dial,
                settings.every,
                Command::Call {
                    uri: target.clone(),
                },
            ),
            Event::Stopped => break,
            _ => {}
        }
    }
}

fn later(commander: &Commander, after: Duration, command: Command) {
    let commander = commander.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        commander.send(command).await;
    });
}

/// The training line's customer database: a local HTTP service on 127.0.0.1 that answers every
/// lookup with the same fictitious customer, so the customer card shows in training mode.
#[derive(Debug)]
pub struct TrainingCrm {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

/// The fictitious customer the training line's CRM describes.
const TRAINING_CUSTOMER: &str = r#"{"nom":"Camille Exemple","contrat":"FORMATION-001","offre":"Fibre 1 Gb/s","note":"Client fictif de la ligne de formation"}"#;

impl TrainingCrm {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_lookup(stream));
            }
        });
        Ok(Self { addr, task })
    }

    /// The URL template for [`crate::ContextConfig::url_template`].
    pub fn url_template(&self) -> String {
        format!("http://{}/customers?from={{from}}", self.addr)
    }
}

impl Drop for TrainingCrm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head (bounded) and answers with the training customer.
async fn answer_lookup(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            _ => return,
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{TRAINING_CUSTOMER}",
        TRAINING_CUSTOMER.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_training_crm_answers_a_context_lookup() {
        let crm = TrainingCrm::start().await.unwrap();
        let client = homeagent_context::ContextClient::new(crate::ContextConfig {
            url_template: crm.url_template(),
            ..Default::default()
        })
        .unwrap();
        let call = homeagent_context::CallInfo {
            from: TRAINING_CALLER.into(),
            to: "agent".into(),
            headers: Vec::new(),
        };
        let card = client.lookup(&call).await.unwrap();
        assert_eq!(card.value("nom"), Some("Camille Exemple"));
        assert_eq!(card.fields.len(), 4);
    }
}
