//! `homeagent demo`: the training line. A simulated customer (a second phone in this process)
//! calls the agent's phone over loopback; the agent hears it on the chosen speaker and talks
//! into the chosen microphone. No registrar, no network beyond 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use homeagent_api::{AnswerMode, Command, Event, Phone, PhoneSettings};

use crate::options::Resolved;
use crate::run::{EXIT_FAILED, EXIT_OK};

/// What the training customer says: the bundled reference speech when the repository's
/// shared folder is there, else a tone.
fn customer_voice() -> String {
    let speech = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/audio/speech16k.wav");
    if speech.is_file() {
        speech.display().to_string()
    } else {
        "tone:440".to_owned()
    }
}

pub async fn run(settings: &Resolved, every: Duration, length: Duration) -> u8 {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let agent = PhoneSettings {
        bind: loopback,
        answer: AnswerMode::Auto,
        registrar: None,
        ..settings.phone.clone()
    };
    let customer = PhoneSettings {
        bind: loopback,
        registrar: None,
        audio_in: customer_voice()
            .parse()
            .unwrap_or(homeagent_api::SourceSpec::Silence),
        audio_out: homeagent_api::SinkSpec::Null,
        ..PhoneSettings::default()
    };
    let (mut agent, mut customer) = match (Phone::start(agent).await, Phone::start(customer).await)
    {
        (Ok(a), Ok(c)) => (a, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("homeagent demo: {e}");
            return EXIT_FAILED;
        }
    };
    let Some(Event::Ready { sip }) = agent.next_event().await else {
        eprintln!("homeagent demo: the agent phone did not start");
        return EXIT_FAILED;
    };
    print_event(settings.json, &Event::Ready { sip: sip.clone() });
    let banner = format!(
        "DEMO / TRAINING LINE — simulated customers on {sip}, nothing leaves this computer. Ctrl-C to stop."
    );
    // With --json, stdout carries only JSON events.
    if settings.json {
        eprintln!("{banner}")
    } else {
        println!("{banner}")
    }
    let dial = customer.commander();
    let target = format!("sip:agent@{sip}");
    later(
        &dial,
        Duration::from_secs(2),
        Command::Call {
            uri: target.clone(),
        },
    );
    let mut stop = Box::pin(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = agent.next_event() => match event {
                Some(event) => print_event(settings.json, &event),
                None => break,
            },
            event = customer.next_event() => match event {
                // The customer hangs up after a while if the agent has not.
                Some(Event::Established { call, .. }) => later(&dial, length, Command::Hangup { call }),
                Some(Event::Ended { .. }) => later(&dial, every, Command::Call { uri: target.clone() }),
                Some(_) => {}
                None => break,
            },
        }
    }
    let _ = agent.send(Command::Shutdown).await;
    let _ = customer.send(Command::Shutdown).await;
    EXIT_OK
}

fn later(commander: &homeagent_api::Commander, after: Duration, command: Command) {
    let commander = commander.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        commander.send(command).await;
    });
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
