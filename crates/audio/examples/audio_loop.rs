//! Copies a source to a sink in real time, printing stream statistics: a manual check of
//! devices. `cargo run -p homeagent-audio --example audio_loop -- SOURCE SINK [SECONDS] [RATE]`
//! (`list` as SOURCE prints the devices; SECONDS 0 copies until the source ends, unpaced:
//! a file conversion).

use std::time::{Duration, Instant};

use homeagent_audio::{SourceState, list_devices, open_sink, open_source};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("list") {
        for device in list_devices()? {
            eprintln!("{device:?}");
        }
        return Ok(());
    }
    let source = args.first().ok_or("missing SOURCE")?.parse()?;
    let sink = args.get(1).ok_or("missing SINK")?.parse()?;
    let seconds: f64 = args.get(2).map_or(Ok(3.0), |s| s.parse())?;
    let rate: u32 = args.get(3).map_or(Ok(16000), |s| s.parse())?;
    let frame = rate as usize / 50;
    let mut source = open_source(&source, rate, frame)?;
    let mut sink = open_sink(&sink, rate, frame)?;
    let mut pcm = vec![0i16; frame];
    let start = Instant::now();
    let paced = seconds > 0.0;
    let frames = if paced {
        (seconds * 50.0) as u64
    } else {
        u64::MAX
    };
    for i in 0..frames {
        if source.read_frame(&mut pcm)? == SourceState::Ended {
            break;
        }
        sink.write_frame(&pcm)?;
        if paced {
            let next = start + Duration::from_millis(20 * (i + 1));
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    sink.finish()?;
    eprintln!("source {:?}", source.stats());
    eprintln!("sink {:?}", sink.stats());
    Ok(())
}
