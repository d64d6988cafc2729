//! `homeagent demo`: the training line. A simulated customer (a second phone in this process)
//! calls the agent's phone over loopback; the agent hears it on the chosen speaker and talks
//! into the chosen microphone. No registrar, no network beyond 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use homeagent_api::{
    AnswerMode, Command, Event, Phone, PhoneSettings, TrainingLine, TrainingSettings,
};

use crate::options::Resolved;
use crate::run::{EXIT_FAILED, EXIT_OK};

/// What the training customer says: the bundled reference speech when the repository's
/// shared folder is there, else a tone.
fn customer_voice() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/audio/speech16k.wav")
}

pub async fn run(settings: &Resolved, every: Duration, length: Duration) -> u8 {
    let agent = PhoneSettings {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        answer: AnswerMode::Auto,
        registrar: None,
        ..settings.phone.clone()
    };
    let mut agent = match Phone::start(agent).await {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("homeagent demo: {e}");
            return EXIT_FAILED;
        }
    };
    let Some(Event::Ready { sip }) = agent.next_event().await else {
        eprintln!("homeagent demo: the agent phone did not start");
        return EXIT_FAILED;
    };
    print_event(settings.json, &Event::Ready { sip: sip.clone() });
    let Ok(address) = sip.parse::<SocketAddr>() else {
        eprintln!("homeagent demo: unexpected agent address {sip}");
        return EXIT_FAILED;
    };
    let training = TrainingSettings {
        every,
        length,
        voice: Some(customer_voice()),
        ..TrainingSettings::default()
    };
    let customer = match TrainingLine::start(address, training).await {
        Ok(line) => line,
        Err(e) => {
            eprintln!("homeagent demo: {e}");
            return EXIT_FAILED;
        }
    };
    let banner = format!(
        "DEMO / TRAINING LINE — simulated customers on {sip}, nothing leaves this computer. Ctrl-C to stop."
    );
    // With --json, stdout carries only JSON events.
    if settings.json {
        eprintln!("{banner}")
    } else {
        println!("{banner}")
    }
    let mut stop = Box::pin(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = agent.next_event() => match event {
                Some(event) => print_event(settings.json, &event),
                None => break,
            },
        }
    }
    customer.stop().await;
    let _ = agent.send(Command::Shutdown).await;
    EXIT_OK
}

fn print_event(json: bool, event: &Event) {
    if json {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
        return;
    }
    let line = match event {
        Event::Ready { .. } => return,
        Event::Incoming { .. } => "[demo] a training customer is calling".to_owned(),
        Event::Established { codec, .. } => {
            format!("[demo] connected ({codec}): you are talking to the training customer")
        }
        Event::Ended { stats, .. } => format!("[demo] call ended after {:.0} s", stats.duration_s),
        Event::Warning { message } => format!("[demo] warning: {message}"),
        _ => return,
    };
    println!("{line}");
}
