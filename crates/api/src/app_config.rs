//! The desktop app's configuration: a system-wide TOML file (what IT deploys) overlaid key by
//! key by a per-user file (what the settings screen writes). Same keys as the CLI's
//! `--config` file, plus the desktop's own (devices by name, language). The SIP password is
//! never in either file: it lives in the OS keychain.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{PhoneSettings, SinkSpec, SourceSpec};

/// Where the layers live.
#[derive(Debug, Clone)]
pub struct ConfigPaths {
    /// `/etc/homeagent/homeagent.toml` (or `HOMEAGENT_SYSTEM_CONFIG`).
    pub system: PathBuf,
    /// `$XDG_CONFIG_HOME/homeagent/homeagent.toml` (or `HOMEAGENT_USER_CONFIG`).
    pub user: PathBuf,
}

impl ConfigPaths {
    pub fn from_env() -> Self {
        let system = std::env::var_os("HOMEAGENT_SYSTEM_CONFIG").map_or_else(
            || PathBuf::from("/etc/homeagent/homeagent.toml"),
            PathBuf::from,
        );
        let user = std::env::var_os("HOMEAGENT_USER_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let base = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                    .unwrap_or_else(|| PathBuf::from("."));
                base.join("homeagent").join("homeagent.toml")
            });
        Self { system, user }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The merged configuration (every key optional: absent means the default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub registrar: Option<String>,
    pub user: Option<String>,
    pub auth_user: Option<String>,
    /// SIP over TLS (`sips:` or `;transport=tls` registrar): PEM file of CA certificates
    /// trusted besides the public web roots (e.g. the platform's private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate revocation lists (e.g. the company CA's): a listed server certificate
    /// is refused.
    pub crl_file: Option<PathBuf>,
    /// SIP over TLS: PEM certificate chain and its private key, presented when the SBC asks
    /// for a client certificate (mutual TLS). Both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Media encryption, SRTP with SDES keys: `off` (default), `preferred` or `mandatory`
    /// (plain RTP refused with 488). See docs/media-encryption.md.
    pub srtp: Option<String>,
    /// ICE + DTLS-SRTP media in our offers: `auto` (default: over a ws/wss registrar), `on`
    /// or `off` (ICE/DTLS offers refused).
    pub ice: Option<String>,
    /// TURN server for ICE calls where direct UDP is blocked (`turn:HOST[:PORT]`); its
    /// password is in the OS keychain (`turn:USER`), its user `turn_user` (default `user`).
    pub turn: Option<String>,
    pub turn_user: Option<String>,
    pub bind: Option<String>,
    pub rtp_ports: Option<String>,
    pub codecs: Option<String>,
    /// Devices by name (as `homeagent devices` lists them); absent: the system default.
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    pub ringer: Option<String>,
    /// Name patterns (case-insensitive substrings) of preferred devices, best first: the first
    /// present device that matches is used when no device is chosen or the chosen one is gone.
    pub preferred_devices: Option<Vec<String>>,
    /// auto | on | off, as for the CLI.
    pub echo_cancellation: Option<String>,
    pub noise_suppression: Option<String>,
    pub gain_control: Option<String>,
    /// fr | en; absent: the OS locale.
    pub language: Option<String>,
    /// Microphone and speaker as the CLI takes them (`FILE.wav`, `tone:HZ`, `silence`, `null`,
    /// `device:NAME`), overriding `microphone`/`speaker`: for IT's diagnostics and for tests.
    pub audio_in: Option<String>,
    pub audio_out: Option<String>,
    /// The contact-center platform (ACD/SBC), `HOST[:PORT]`, comma-separated: only its calls
    /// answer themselves and they reach only a ready agent.
    pub platform: Option<String>,
    /// Forced delivery: every call from the platform is answered at once.
    pub auto_answer_all: Option<bool>,
    /// Customer context (screen-pop) URL template: `{from}`, `{to}`, `{header:NAME}`.
    pub context_url: Option<String>,
    /// Seconds; default 1.5.
    pub context_timeout: Option<f64>,
    /// Name of the header carrying the CRM credential (its value is in the OS keychain).
    pub context_auth_header: Option<String>,
    /// The customer card's rows: `"Label=json.path"`, in order; absent: every top-level field.
    pub context_fields: Option<Vec<String>>,
    /// The platform's HTTP API (docs/platform-api.yaml); its token is in the OS keychain.
    pub platform_api: Option<String>,
    /// The agent's id on the platform; default: `user`.
    pub agent: Option<String>,
    /// Not-ready reasons offered to the agent.
    pub not_ready_reasons: Option<Vec<String>>,
    /// Wrap-up disposition codes: `"CODE"` or `"CODE=Label"`.
    pub dispositions: Option<Vec<String>>,
    /// Longest after-call work, seconds (0: none).
    pub wrapup_time: Option<f64>,
    /// After after-call work: `ready` (default) or `not_ready:REASON`.
    pub after_wrapup: Option<String>,
}

/// A wrap-up disposition the agent picks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Disposition {
    pub code: String,
    pub label: String,
}

impl AppConfig {
    /// The not-ready reasons offered (a default set when IT configured none).
    pub fn not_ready_reasons(&self) -> Vec<String> {
        self.not_ready_reasons
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| {
                vec![
                    "pause".into(),
                    "formation".into(),
                    "incident technique".into(),
                ]
            })
    }

    /// The dispositions offered.
    pub fn dispositions(&self) -> Vec<Disposition> {
        self.dispositions
            .iter()
            .flatten()
            .filter(|d| !d.trim().is_empty())
            .map(|entry| match entry.split_once('=') {
                Some((code, label)) => Disposition {
                    code: code.trim().to_owned(),
                    label: label.trim().to_owned(),
                },
                None => Disposition {
                    code: entry.trim().to_owned(),
                    label: entry.trim().to_owned(),
                },
            })
            .collect()
    }

    /// The workflow (context, platform API, wrap-ups) as configured; secrets from `secret`
    /// (the keychain), looked up by name: `context`, `platform`.
    pub fn workflow_settings(
        &self,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::WorkflowSettings, String> {
        let mut settings = crate::WorkflowSettings::default();
        if let Some(template) = self.context_url.clone().filter(|t| !t.trim().is_empty()) {
            let mut context = crate::ContextConfig {
                url_template: template,
                ..Default::default()
            };
            if let Some(seconds) = self.context_timeout {
                if !(seconds.is_finite() && seconds > 0.0 && seconds < 60.0) {
                    return Err(format!(
                        "context_timeout = {seconds}: expected seconds (0-60)"
                    ));
                }
                context.timeout = std::time::Duration::from_secs_f64(seconds);
            }
            for row in self.context_fields.iter().flatten() {
                let (label, path) = row
                    .split_once('=')
                    .ok_or_else(|| format!("context_fields: {row:?} is not \"Label=path\""))?;
                context
                    .fields
                    .push(crate::FieldMapping::new(label.trim(), path.trim()));
            }
            if let Some(header) = &self.context_auth_header
                && let Some(value) = secret("context")
            {
                context.auth_header = Some((header.clone(), value));
            }
            settings.context = Some(context);
        }
        settings.platform_api = self.platform_api.clone().filter(|u| !u.trim().is_empty());
        if settings.platform_api.is_some() {
            settings.platform_token = secret("platform");
        }
        settings.agent = self
            .agent
            .clone()
            .or_else(|| self.user.clone())
            .unwrap_or_else(|| "agent".to_owned());
        Ok(settings)
    }
}

/// What the settings screen shows and saves (the user layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct UserSettings {
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    pub ringer: Option<String>,
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    pub preferred_devices: Vec<String>,
    pub language: Option<String>,
}

impl AppConfig {
    /// Reads both layers (a missing file is an empty layer) and overlays the user's.
    pub fn load(paths: &ConfigPaths) -> Result<Self, ConfigError> {
        let mut merged = read_table(&paths.system)?;
        for (key, value) in read_table(&paths.user)? {
            merged.insert(key, value);
        }
        let config: Self =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: paths.user.clone(),
                    message: e.message().to_owned(),
                })?;
        for (key, value) in [
            ("echo_cancellation", &config.echo_cancellation),
            ("noise_suppression", &config.noise_suppression),
            ("gain_control", &config.gain_control),
        ] {
            if let Some(value) = value
                && switch(value).is_none()
            {
                return Err(ConfigError::Invalid {
                    path: paths.user.clone(),
                    message: format!("{key} = \"{value}\": expected auto, on or off"),
                });
            }
        }
        Ok(config)
    }

    /// No registrar configured: the app runs its training line.
    pub fn is_demo(&self) -> bool {
        self.registrar
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    }

    pub fn user_settings(&self) -> UserSettings {
        let on = |value: &Option<String>| value.as_deref().and_then(switch).unwrap_or(true);
        UserSettings {
            microphone: self.microphone.clone(),
            speaker: self.speaker.clone(),
            ringer: self.ringer.clone(),
            echo_cancellation: on(&self.echo_cancellation),
            noise_suppression: on(&self.noise_suppression),
            gain_control: on(&self.gain_control),
            preferred_devices: self.preferred_devices.clone().unwrap_or_default(),
            language: self.language.clone(),
        }
    }

    /// The phone settings (password aside) with devices resolved against the present ones
    /// (`inputs`, `outputs`: device names).
    pub fn phone_settings(
        &self,
        inputs: &[String],
        outputs: &[String],
    ) -> Result<PhoneSettings, String> {
        let mut phone = PhoneSettings::default();
        if let Some(bind) = &self.bind {
            phone.bind = bind
                .parse()
                .map_err(|e| format!("bind = \"{bind}\": {e}"))?;
        }
        if let Some(codecs) = &self.codecs {
            phone.codecs = PhoneSettings::parse_codecs(codecs).map_err(|e| e.to_string())?;
        }
        if let Some(ports) = &self.rtp_ports {
            let (low, high) = ports
                .split_once('-')
                .and_then(|(l, h)| Some((l.trim().parse().ok()?, h.trim().parse().ok()?)))
                .ok_or_else(|| format!("rtp_ports = \"{ports}\": expected LOW-HIGH"))?;
            phone.rtp_ports = (low, high);
        }
        phone.registrar = self.registrar.clone().filter(|r| !r.trim().is_empty());
        phone.user = self.user.clone();
        phone.auth_user = self.auth_user.clone();
        phone.tls.ca_file = self.ca_file.clone();
        phone.tls.crl_file = self.crl_file.clone();
        phone.tls.client_cert = self.client_cert.clone();
        phone.tls.client_key = self.client_key.clone();
        if phone.tls.client_cert.is_some() != phone.tls.client_key.is_some() {
            return Err("client_cert and client_key go together".to_owned());
        }
        phone.srtp = match self.srtp.as_deref().map(str::trim) {
            None | Some("off") => crate::SrtpPolicy::Off,
            Some("preferred") => crate::SrtpPolicy::Preferred,
            Some("mandatory") => crate::SrtpPolicy::Mandatory,
            Some(other) => {
                return Err(format!(
                    "srtp = \"{other}\": expected off, preferred or mandatory"
                ));
            }
        };
        phone.ice = match self.ice.as_deref().map(str::trim) {
            None | Some("auto") => crate::IceMode::Auto,
            Some("on") => crate::IceMode::On,
            Some("off") => crate::IceMode::Off,
            Some(other) => return Err(format!("ice = \"{other}\": expected auto, on or off")),
        };
        let (microphone, speaker) = self.device_route(inputs, outputs);
        phone.audio_in = match (&self.audio_in, microphone) {
            (Some(spec), _) => spec
                .parse()
                .map_err(|e| format!("audio_in = \"{spec}\": {e}"))?,
            (None, device) => device_source(device.as_deref()),
        };
        phone.audio_out = match (&self.audio_out, speaker) {
            (Some(spec), _) => spec
                .parse()
                .map_err(|e| format!("audio_out = \"{spec}\": {e}"))?,
            (None, device) => device_sink(device.as_deref()),
        };
        let processing = &mut phone.audio_processing;
        processing.echo_cancellation = self.echo_cancellation.as_deref().and_then(switch);
        processing.noise_suppression = self.noise_suppression.as_deref().and_then(switch);
        processing.gain_control = self.gain_control.as_deref().and_then(switch);
        phone.platform = self
            .platform
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        phone.auto_answer_all = self.auto_answer_all.unwrap_or(false);
        if let Some(seconds) = self.wrapup_time {
            if !(seconds.is_finite() && (0.0..86_400.0).contains(&seconds)) {
                return Err(format!("wrapup_time = {seconds}: expected seconds"));
            }
            phone.wrapup.max_time = std::time::Duration::from_secs_f64(seconds);
        }
        phone.wrapup.then_not_ready = match self.after_wrapup.as_deref().map(str::trim) {
            None | Some("ready") => None,
            Some(other) => match other.strip_prefix("not_ready") {
                Some(reason) => Some(reason.trim_start_matches(':').trim().to_owned()),
                None => {
                    return Err(format!(
                        "after_wrapup = {other:?}: ready or not_ready:REASON"
                    ));
                }
            },
        };
        Ok(phone)
    }

    /// The microphone and speaker after the preference rules, as `device:NAME` specs
    /// (`device:default` when no rule matches); `None` for a side pinned by `audio_in` /
    /// `audio_out`, which device changes never touch.
    pub fn device_route(
        &self,
        inputs: &[String],
        outputs: &[String],
    ) -> (Option<String>, Option<String>) {
        let preferred = self.preferred_devices.as_deref().unwrap_or_default();
        let spec =
            |device: Option<String>| format!("device:{}", device.as_deref().unwrap_or("default"));
        let microphone = self
            .audio_in
            .is_none()
            .then(|| spec(choose_device(self.microphone.as_deref(), preferred, inputs)));
        let speaker = self
            .audio_out
            .is_none()
            .then(|| spec(choose_device(self.speaker.as_deref(), preferred, outputs)));
        (microphone, speaker)
    }

    /// The ringer device after the preference rules (`None`: the system default).
    pub fn ringer_device(&self, outputs: &[String]) -> Option<String> {
        let preferred = self.preferred_devices.as_deref().unwrap_or_default();
        choose_device(self.ringer.as_deref(), preferred, outputs)
    }
}

/// Writes `settings` into the user layer, keeping its other keys.
pub fn save_user_settings(path: &Path, settings: &UserSettings) -> Result<(), ConfigError> {
    let mut table = read_table(path)?;
    let mut set = |key: &str, value: Option<toml::Value>| match value {
        Some(value) => {
            table.insert(key.to_owned(), value);
        }
        None => {
            table.remove(key);
        }
    };
    let text = |value: &Option<String>| {
        value
            .as_ref()
            .filter(|v| !v.is_empty())
            .map(|v| toml::Value::String(v.clone()))
    };
    let switch = |on: bool| {
        Some(toml::Value::String(
            if on { "on" } else { "off" }.to_owned(),
        ))
    };
    set("microphone", text(&settings.microphone));
    set("speaker", text(&settings.speaker));
    set("ringer", text(&settings.ringer));
    set("echo_cancellation", switch(settings.echo_cancellation));
    set("noise_suppression", switch(settings.noise_suppression));
    set("gain_control", switch(settings.gain_control));
    let patterns: Vec<toml::Value> = settings
        .preferred_devices
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| toml::Value::String(p.trim().to_owned()))
        .collect();
    set(
        "preferred_devices",
        (!patterns.is_empty()).then_some(toml::Value::Array(patterns)),
    );
    set("language", text(&settings.language));
    let write_error = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    let body = toml::to_string(&table).map_err(|e| ConfigError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    // Write then rename: a crash never leaves half a file.
    let temporary = path.with_extension("toml.tmp");
    std::fs::write(&temporary, body).map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(write_error)
}

/// The chosen device when present, else the first present device matching a preferred
/// pattern, else `None` (the system default).
pub fn choose_device(
    chosen: Option<&str>,
    preferred: &[String],
    present: &[String],
) -> Option<String> {
    if let Some(chosen) = chosen.filter(|c| present.iter().any(|p| p == c)) {
        return Some(chosen.to_owned());
    }
    preferred.iter().find_map(|pattern| {
        let pattern = pattern.trim().to_lowercase();
        if pattern.is_empty() {
            return None;
        }
        present
            .iter()
            .find(|name| name.to_lowercase().contains(&pattern))
            .cloned()
    })
}

fn device_source(spec: Option<&str>) -> SourceSpec {
    spec.unwrap_or("device:default")
        .parse()
        .unwrap_or(SourceSpec::Silence)
}

fn device_sink(spec: Option<&str>) -> SinkSpec {
    spec.unwrap_or("device:default")
        .parse()
        .unwrap_or(SinkSpec::Null)
}

fn switch(value: &str) -> Option<bool> {
    match value {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(toml::Table::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    text.parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `# key = value` line of the documented example, uncommented, is a known key with a
    /// valid value.
    #[test]
    fn the_documented_example_parses_with_every_key() {
        let example = include_str!("../../../docs/homeagent-desktop.example.toml");
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let config: AppConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(config.dispositions()[0].label, "Vente");
        let phone = config.phone_settings(&[], &[]).unwrap();
        assert_eq!(phone.platform, ["10.1.2.3:5060"]);
        assert_eq!(phone.wrapup.max_time, std::time::Duration::from_secs(60));
        let workflow = config.workflow_settings(|_| Some("secret".into())).unwrap();
        let context = workflow.context.expect("context lookup");
        assert_eq!(context.fields.len(), 2);
        assert_eq!(
            context.auth_header.map(|h| h.0).as_deref(),
            Some("Authorization")
        );
        assert_eq!(workflow.platform_token.as_deref(), Some("secret"));
    }

    fn paths(dir: &Path) -> ConfigPaths {
        ConfigPaths {
            system: dir.join("system.toml"),
            user: dir.join("user/homeagent.toml"),
        }
    }

    #[test]
    fn user_layer_overrides_the_system_layer_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        std::fs::write(
            &paths.system,
            "registrar = \"sip:pbx.example.com;transport=tcp\"\nuser = \"agent01\"\nnoise_suppression = \"off\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(paths.user.parent().unwrap()).unwrap();
        std::fs::write(&paths.user, "user = \"agent02\"\nlanguage = \"en\"\n").unwrap();
        let config = AppConfig::load(&paths).unwrap();
        assert_eq!(
            config.registrar.as_deref(),
            Some("sip:pbx.example.com;transport=tcp")
        );
        assert_eq!(config.user.as_deref(), Some("agent02"));
        assert_eq!(config.language.as_deref(), Some("en"));
        assert!(!config.is_demo());
        assert!(!config.user_settings().noise_suppression);
        assert!(config.user_settings().echo_cancellation);
    }

    #[test]
    fn no_files_is_demo_mode_and_bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        assert!(AppConfig::load(&paths).unwrap().is_demo());
        std::fs::write(&paths.system, "registrar = [").unwrap();
        let error = AppConfig::load(&paths).unwrap_err().to_string();
        assert!(
            error.contains("system.toml") && error.contains("TOML"),
            "{error}"
        );
        std::fs::write(&paths.system, "registar = \"sip:x\"").unwrap();
        let error = AppConfig::load(&paths).unwrap_err().to_string();
        assert!(error.contains("registar"), "{error}");
        std::fs::write(&paths.system, "gain_control = \"maybe\"").unwrap();
        let error = AppConfig::load(&paths).unwrap_err().to_string();
        assert!(error.contains("gain_control"), "{error}");
    }

    #[test]
    fn saving_writes_the_user_layer_only_and_keeps_its_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        std::fs::write(&paths.system, "registrar = \"sip:pbx\"\n").unwrap();
        std::fs::create_dir_all(paths.user.parent().unwrap()).unwrap();
        std::fs::write(&paths.user, "user = \"agent07\"\n").unwrap();
        let settings = UserSettings {
            microphone: Some("Jabra Evolve".into()),
            speaker: None,
            ringer: Some("Built-in speakers".into()),
            echo_cancellation: false,
            noise_suppression: true,
            gain_control: true,
            preferred_devices: vec!["jabra".into(), " ".into()],
            language: Some("en".into()),
        };
        save_user_settings(&paths.user, &settings).unwrap();
        assert_eq!(
            std::fs::read_to_string(&paths.system).unwrap(),
            "registrar = \"sip:pbx\"\n"
        );
        let config = AppConfig::load(&paths).unwrap();
        assert_eq!(config.user.as_deref(), Some("agent07"));
        let mut expected = settings.clone();
        expected.preferred_devices = vec!["jabra".into()];
        assert_eq!(config.user_settings(), expected);
    }

    #[test]
    fn srtp_policy_is_read_and_a_typo_is_an_error() {
        let with = |srtp: Option<&str>| AppConfig {
            srtp: srtp.map(str::to_owned),
            ..AppConfig::default()
        };
        let policy = |srtp| with(srtp).phone_settings(&[], &[]).map(|p| p.srtp);
        assert_eq!(policy(None), Ok(crate::SrtpPolicy::Off));
        assert_eq!(policy(Some("mandatory")), Ok(crate::SrtpPolicy::Mandatory));
        assert_eq!(policy(Some("preferred")), Ok(crate::SrtpPolicy::Preferred));
        let error = policy(Some("yes")).unwrap_err();
        assert!(error.contains("srtp = \"yes\""), "{error}");
    }

    #[test]
    fn preferred_devices_apply_when_the_chosen_one_is_absent() {
        let present = ["Built-in Audio".to_owned(), "Jabra Evolve2 65".to_owned()];
        let preferred = ["headset".to_owned(), "JABRA".to_owned()];
        assert_eq!(
            choose_device(Some("Built-in Audio"), &preferred, &present).as_deref(),
            Some("Built-in Audio")
        );
        assert_eq!(
            choose_device(Some("Unplugged USB"), &preferred, &present).as_deref(),
            Some("Jabra Evolve2 65")
        );
        assert_eq!(choose_device(None, &[], &present), None);
        let config = AppConfig {
            microphone: Some("Unplugged USB".into()),
            preferred_devices: Some(preferred.to_vec()),
            ..AppConfig::default()
        };
        let phone = config.phone_settings(&present, &present).unwrap();
        assert_eq!(phone.audio_in.to_string(), "device:Jabra Evolve2 65");
        assert!(
            config
                .phone_settings(&present, &present)
                .is_ok_and(|p| p.registrar.is_none())
        );
        let bad = AppConfig {
            rtp_ports: Some("20000".into()),
            ..AppConfig::default()
        };
        assert!(
            bad.phone_settings(&[], &[])
                .unwrap_err()
                .contains("rtp_ports")
        );
        // audio_in/audio_out win over the device choice.
        let files = AppConfig {
            microphone: Some("Jabra Evolve2 65".into()),
            audio_in: Some("tone:300".into()),
            audio_out: Some("null".into()),
            ..AppConfig::default()
        };
        let phone = files.phone_settings(&present, &present).unwrap();
        assert_eq!(phone.audio_in.to_string(), "tone:300");
        assert_eq!(phone.audio_out, crate::SinkSpec::Null);
        let bad = AppConfig {
            audio_in: Some("microphone".into()),
            ..AppConfig::default()
        };
        let error = bad.phone_settings(&[], &[]).unwrap_err();
        assert!(error.contains("audio_in"), "{error}");
    }
}
