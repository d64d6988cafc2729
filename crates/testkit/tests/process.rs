//! Process capture, bounded waits, group kill on drop, port allocation, JSON events, WAV.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use homeagent_testkit::{HomeagentProcess, Process, TempDir, TestkitError, ports, wav};

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn wait_log_finds_lines_and_times_out_bounded() {
    let dir = TempDir::new("proc").expect("dir");
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "echo one; printf 'two\\r\\033[31mthree\\033[0m\\n'; sleep 30",
    ]);
    let process = Process::spawn("sh", cmd, &dir.join("log"), false).expect("spawn");
    assert_eq!(
        process
            .wait_log("^one$", Duration::from_secs(5))
            .expect("one"),
        "one"
    );
    // '\r' splits status lines; colours are stripped.
    process
        .wait_log("^three$", Duration::from_secs(5))
        .expect("three");
    let started = Instant::now();
    let err = process
        .wait_log("never", Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, TestkitError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        std::fs::read_to_string(process.log_path())
            .expect("log")
            .contains("one")
    );
}

#[test]
fn wait_log_fails_fast_when_the_process_exits() {
    let dir = TempDir::new("proc").expect("dir");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo bye"]);
    let process = Process::spawn("sh", cmd, &dir.join("log"), false).expect("spawn");
    let started = Instant::now();
    let err = process
        .wait_log("never", Duration::from_secs(20))
        .unwrap_err();
    assert!(matches!(err, TestkitError::Failed { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn drop_kills_the_whole_process_group() {
    let dir = TempDir::new("proc").expect("dir");
    let mut cmd = Command::new("sh");
    // A grandchild in the same group; its PID printed.
    cmd.args(["-c", "sleep 60 & echo child=$!; wait"]);
    let process = Process::spawn("sh", cmd, &dir.join("log"), false).expect("spawn");
    let line = process
        .wait_log("^child=", Duration::from_secs(5))
        .expect("pid");
    let grandchild: u32 = line.trim_start_matches("child=").parse().expect("a pid");
    let leader = process.pid();
    assert!(alive(grandchild) && alive(leader));
    drop(process);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(grandchild) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(grandchild), "grandchild {grandchild} survived");
}

#[test]
fn stdin_lines_reach_the_process() {
    let dir = TempDir::new("proc").expect("dir");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "read a; echo got:$a"]);
    let mut process = Process::spawn("sh", cmd, &dir.join("log"), true).expect("spawn");
    process.send_line("hello").expect("write");
    process
        .wait_log("^got:hello$", Duration::from_secs(5))
        .expect("echo");
    assert!(
        process
            .wait_exit(Duration::from_secs(5))
            .expect("exit")
            .success()
    );
}

#[test]
fn parallel_reservations_do_not_collide() {
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                (0..20)
                    .map(|_| ports::reserve(&[0, 1, 2]))
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let mut all: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a base port was handed out twice");
    // A port in use is skipped.
    let held = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let taken = held.local_addr().expect("addr").port();
    assert!(!ports::is_free(taken));
}

#[test]
fn homeagent_process_collects_json_events() {
    let script = "echo '{\"event\":\"ready\"}'; echo 'a log line'; read cmd; \
                  echo \"{\\\"event\\\":\\\"got\\\",\\\"cmd\\\":\\\"$cmd\\\"}\"; exit 3";
    let mut agent =
        HomeagentProcess::spawn_program(Path::new("sh"), &["-c", script], &[]).expect("spawn");
    agent
        .wait_event(|e| e["event"] == "ready", Duration::from_secs(5))
        .expect("ready");
    agent.send_line("dial").expect("stdin");
    let got = agent
        .wait_event(|e| e["event"] == "got", Duration::from_secs(5))
        .expect("got");
    assert_eq!(got["cmd"], "dial");
    assert_eq!(agent.events().len(), 2, "non-JSON lines are not events");
    let status = agent.wait_exit(Duration::from_secs(5)).expect("exit");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn wav_clip_keeps_format_and_pads() {
    let src = homeagent_testkit::Codec::Pcmu.speech_wav();
    if !src.exists() {
        eprintln!("SKIP: no shared audio at {}", src.display());
        return;
    }
    let dir = TempDir::new("wav").expect("dir");
    let out = dir.join("clip.wav");
    wav::clip(&src, &out, Duration::from_secs(2), Duration::from_secs(1)).expect("clip");
    let info = wav::info(&out).expect("info");
    assert_eq!((info.rate, info.channels), (8000, 1));
    assert_eq!(info.duration, Duration::from_secs(3));
    assert!(info.rms > 0.01, "speech is not silent: {info:?}");
}
