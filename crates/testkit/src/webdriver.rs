//! The real desktop app under Xvfb, driven through WebDriver (`tauri-driver` in front of
//! WebKitWebDriver). A minimal W3C WebDriver client over HTTP/1.1: sessions, elements found
//! by `data-testid`, clicks, text, screenshots.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
#[error("webdriver: {0}")]
pub struct WebDriverError(pub String);

type Result<T> = std::result::Result<T, WebDriverError>;

fn fail(message: impl Into<String>) -> WebDriverError {
    WebDriverError(message.into())
}

/// Whether the tools are installed (`tauri-driver`, `WebKitWebDriver`, `Xvfb`).
pub fn available() -> bool {
    ["tauri-driver", "WebKitWebDriver", "Xvfb"]
        .iter()
        .all(|tool| crate::installed(tool))
}

/// A running app in its own X display, with a WebDriver session on its window.
#[derive(Debug)]
pub struct DesktopApp {
    xvfb: Child,
    driver: Child,
    port: u16,
    session: String,
    /// Where screenshots of failures go.
    artifacts: PathBuf,
}

impl DesktopApp {
    /// Starts Xvfb, `tauri-driver` and `application` (with `env` added to its environment).
    pub fn launch(application: &Path, env: &[(&str, String)], artifacts: &Path) -> Result<Self> {
        let (xvfb, display) = start_xvfb()?;
        let port = crate::ports::free_port();
        let native = crate::ports::free_port();
        let mut command = Command::new("tauri-driver");
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &display)
            // Its own process group: WebKitWebDriver and the app go with it.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let driver = command
            .spawn()
            .map_err(|e| fail(format!("cannot start tauri-driver: {e}")))?;
        let mut app = Self {
            xvfb,
            driver,
            port,
            session: String::new(),
            artifacts: artifacts.to_owned(),
        };
        wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .map_err(|_| fail("tauri-driver did not listen"))?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application},
        }}});
        let created = app.request("POST", "/session", Some(capabilities))?;
        app.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| fail(format!("no session id in {created}")))?
            .to_owned();
        Ok(app)
    }

    /// Waits for an element with this `data-testid`; returns its element id.
    pub fn wait_for(&self, test_id: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(element) = self.find(test_id) {
                return Ok(element);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("no [data-testid={test_id}] after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn find(&self, test_id: &str) -> Result<String> {
        let found = self.session_request(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": format!("[data-testid=\"{test_id}\"]")})),
        )?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail(format!("no element in {found}")))
    }

    /// How many elements carry this `data-testid`.
    pub fn count(&self, test_id: &str) -> Result<usize> {
        let found = self.session_request(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": format!("[data-testid=\"{test_id}\"]")})),
        )?;
        Ok(found.as_array().map_or(0, Vec::len))
    }

    pub fn click(&self, test_id: &str, timeout: Duration) -> Result<()> {
        let element = self.wait_for(test_id, timeout)?;
        self.session_request(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .map(drop)
    }

    /// Picks the first non-empty option of a `<select>` by clicking it.
    pub fn select_first_option(&self, test_id: &str) -> Result<()> {
        let selector = format!("[data-testid=\"{test_id}\"] option:not([value=\"\"])");
        let found = self.session_request(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": selector})),
        )?;
        let element = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail(format!("no option in {found}")))?;
        self.session_request(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .map(drop)
    }

    /// Types into an input (W3C Element Send Keys), as the agent would.
    pub fn type_text(&self, test_id: &str, text: &str, timeout: Duration) -> Result<()> {
        let element = self.wait_for(test_id, timeout)?;
        self.session_request(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    pub fn text(&self, test_id: &str) -> Result<String> {
        let element = self.find(test_id)?;
        let text = self.session_request("GET", &format!("/element/{element}/text"), None)?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    pub fn attribute(&self, test_id: &str, name: &str) -> Result<Option<String>> {
        let element = self.find(test_id)?;
        let value =
            self.session_request("GET", &format!("/element/{element}/attribute/{name}"), None)?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// A DOM property (`value` of an input).
    pub fn property(&self, test_id: &str, name: &str) -> Result<Value> {
        let element = self.find(test_id)?;
        self.session_request("GET", &format!("/element/{element}/property/{name}"), None)
    }

    /// Waits until `check` holds (polling), or fails with a screenshot.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("{what}: not after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Saves a PNG of the window under the artifacts folder; returns its path.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let data = self.session_request("GET", "/screenshot", None)?;
        let png = decode_base64(data.as_str().unwrap_or_default())
            .ok_or_else(|| fail("screenshot is not base64"))?;
        std::fs::create_dir_all(&self.artifacts).map_err(|e| fail(e.to_string()))?;
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| fail(e.to_string()))?;
        Ok(path)
    }

    /// An error that also saves a screenshot and names it.
    fn failure(&self, message: &str) -> WebDriverError {
        let name = format!(
            "failure-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        match self.screenshot(&name) {
            Ok(path) => fail(format!("{message} (screenshot: {})", path.display())),
            Err(_) => fail(message.to_owned()),
        }
    }

    fn session_request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.request(method, &format!("/session/{}{path}", self.session), body)
    }

    /// One WebDriver call. The proxy sometimes closes a connection without answering (seen
    /// with tauri-driver 2.1): an empty reply is retried, a few times.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.exchange(method, path, &body) {
                Err(Exchange::Empty) if attempts < 4 => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(Exchange::Empty) => return Err(fail(format!("{method} {path}: no reply"))),
                Err(Exchange::Failed(error)) => return Err(error),
                Ok(value) => return Ok(value),
            }
        }
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::result::Result<Value, Exchange> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| fail(e.to_string()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| fail(e.to_string()))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| fail(format!("{method} {path}: {e}")))?;
        if response.is_empty() {
            return Err(Exchange::Empty);
        }
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| fail("malformed HTTP response"))?;
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        let mut payload = response[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            payload = dechunk(&payload).ok_or_else(|| fail("malformed chunked body"))?;
        }
        let value: Value =
            serde_json::from_slice(&payload).map_err(|e| fail(format!("{method} {path}: {e}")))?;
        let value = value.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(fail(format!("{method} {path}: {error}: {message}")).into());
        }
        Ok(value)
    }
}

enum Exchange {
    /// The connection closed without a byte of reply.
    Empty,
    Failed(WebDriverError),
}

impl From<WebDriverError> for Exchange {
    fn from(error: WebDriverError) -> Self {
        Self::Failed(error)
    }
}

impl Drop for DesktopApp {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
        }
        // tauri-driver leaves WebKitWebDriver behind when killed alone: end the whole group.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        for child in [&mut self.driver, &mut self.xvfb] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_xvfb() -> Result<(Child, String)> {
    for number in 90..140 {
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        let lock = PathBuf::from(format!("/tmp/.X{number}-lock"));
        if lock.exists() || socket.exists() {
            // A lock left by a killed Xvfb names a dead process: the display is free.
            let owner = std::fs::read_to_string(&lock)
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok());
            if owner.is_none_or(|pid| PathBuf::from(format!("/proc/{pid}")).exists()) {
                continue;
            }
            let _ = std::fs::remove_file(&lock);
            let _ = std::fs::remove_file(&socket);
        }
        let display = format!(":{number}");
        let mut child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x900x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot start Xvfb: {e}")))?;
        if wait_until(Duration::from_secs(10), || socket.exists()).is_ok() {
            return Ok((child, display));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    Err(fail("no free X display"))
}

fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> std::result::Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut bits = 0u32;
        for &c in chunk {
            bits = bits << 6 | value(c)?;
        }
        bits <<= 6 * (4 - chunk.len() as u32);
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_chunked_bodies() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert!(decode_base64("a$").is_none());
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"9\r\nabc").is_none());
    }
}
