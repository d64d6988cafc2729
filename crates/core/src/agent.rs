//! The agent's state as the contact center sees it: logged out, ready, not ready (with a
//! reason), on a call, in after-call work (wrap-up). Only a ready agent gets the platform's
//! calls; a call's end starts after-call work, which ends when the wrap-up is done or its time
//! is up.

use std::time::{Duration, Instant};

/// The agent's availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    Ready,
    NotReady {
        reason: String,
    },
    OnCall,
    /// After-call work: the call is over, the wrap-up is being written.
    AfterCallWork,
}

impl AgentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::Ready => "ready",
            Self::NotReady { .. } => "not_ready",
            Self::OnCall => "on_call",
            Self::AfterCallWork => "after_call_work",
        }
    }
}

/// What ends after-call work and what follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrapupRules {
    /// The longest after-call work; zero: none (ready again as soon as the call ends).
    pub max_time: Duration,
    /// The state after it: ready (`None`) or not ready with this reason.
    pub then_not_ready: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Agent {
    state: AgentState,
    since: Instant,
    wrapup_until: Option<Instant>,
}

impl Agent {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            state: AgentState::Ready,
            since: now,
            wrapup_until: None,
        }
    }

    pub(crate) fn state(&self) -> &AgentState {
        &self.state
    }

    /// The SIP status that refuses an incoming call in this state, or `None` to let it in.
    /// The platform's calls come only to a ready agent; other calls (no platform configured)
    /// are refused only while the agent is not ready or logged out (call waiting stays).
    pub(crate) fn refusal(&self, from_platform: bool) -> Option<u16> {
        match (&self.state, from_platform) {
            (AgentState::Ready, _) => None,
            (AgentState::OnCall, true) => Some(486),
            (AgentState::NotReady { .. } | AgentState::LoggedOut, _) | (_, true) => Some(480),
            _ => None,
        }
    }

    /// The agent's own choice (log in/out, ready, not ready): always honoured, except that
    /// on-call and after-call work only come from calls. Returns whether the state changed.
    pub(crate) fn choose(&mut self, state: AgentState, now: Instant) -> bool {
        if matches!(state, AgentState::OnCall | AgentState::AfterCallWork) {
            return false;
        }
        self.enter(state, now)
    }

    /// A call was answered or connected: on call, unless the agent was not ready or logged
    /// out (their own calls do not make them available afterwards).
    pub(crate) fn call_started(&mut self, now: Instant) -> bool {
        if !matches!(self.state, AgentState::Ready | AgentState::AfterCallWork) {
            return false;
        }
        self.enter(AgentState::OnCall, now)
    }

    /// The last call ended: after-call work, or straight to what follows it.
    pub(crate) fn calls_ended(&mut self, now: Instant, rules: &WrapupRules) -> bool {
        if self.state != AgentState::OnCall {
            return false;
        }
        if rules.max_time.is_zero() {
            return self.enter(after_wrapup(rules), now);
        }
        let changed = self.enter(AgentState::AfterCallWork, now);
        self.wrapup_until = Some(now + rules.max_time);
        changed
    }

    /// The wrap-up was submitted: after-call work ends.
    pub(crate) fn wrapup_done(&mut self, now: Instant, rules: &WrapupRules) -> bool {
        if self.state != AgentState::AfterCallWork {
            return false;
        }
        self.enter(after_wrapup(rules), now)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.wrapup_until
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, rules: &WrapupRules) -> bool {
        if self.wrapup_until.is_some_and(|until| until <= now) {
            return self.wrapup_done(now, rules);
        }
        false
    }

    pub(crate) fn since(&self) -> Instant {
        self.since
    }

    fn enter(&mut self, state: AgentState, now: Instant) -> bool {
        self.wrapup_until = None;
        if self.state == state {
            return false;
        }
        self.state = state;
        self.since = now;
        true
    }
}

fn after_wrapup(rules: &WrapupRules) -> AgentState {
    match &rules.then_not_ready {
        Some(reason) => AgentState::NotReady {
            reason: reason.clone(),
        },
        None => AgentState::Ready,
    }
}

/// How long after the INVITE the caller (the platform) asks us to answer by ourselves, if it
/// does: `Call-Info: <…>;answer-after=N`, `Alert-Info: <…>;info=alert-autoanswer` (or the
/// RFC 7462 `urn:alert:service:auto-answer`), or RFC 5373 `Answer-Mode: Auto`.
pub(crate) fn auto_answer_request(headers: &homeagent_sip::message::Headers) -> Option<Duration> {
    for value in headers.get_all("Call-Info") {
        for param in value.split(';').skip(1) {
            let Some((name, seconds)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("answer-after")
                && let Ok(seconds) = seconds.trim().trim_matches('"').parse::<u32>()
            {
                return Some(Duration::from_secs(u64::from(seconds.min(60))));
            }
        }
    }
    let auto_alert = headers.get_all("Alert-Info").any(|value| {
        let value = value.to_ascii_lowercase();
        value.contains("info=alert-autoanswer") || value.contains("urn:alert:service:auto-answer")
    });
    let answer_mode = headers.get_all("Answer-Mode").any(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("auto"))
    });
    (auto_alert || answer_mode).then_some(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeagent_sip::message::Headers;

    #[allow(clippy::disallowed_methods)] // The tests' one clock reading.
    fn base() -> Instant {
        Instant::now()
    }

    fn headers(lines: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in lines {
            headers.push(name, (*value).to_owned());
        }
        headers
    }

    #[test]
    fn auto_answer_requests_are_read_from_the_usual_headers() {
        let after = |lines: &[(&str, &str)]| auto_answer_request(&headers(lines));
        assert_eq!(
            after(&[("Call-Info", "<sip:acd.example>;answer-after=0")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            after(&[("Call-Info", "<http://x>;purpose=info;Answer-After=3")]),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            after(&[("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            after(&[("Alert-Info", "<urn:alert:service:auto-answer>")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            after(&[("Answer-Mode", "Auto;require")]),
            Some(Duration::ZERO)
        );
        assert_eq!(after(&[("Answer-Mode", "Manual")]), None);
        assert_eq!(after(&[("Call-Info", "<sip:x>;answer-after=soon")]), None);
        assert_eq!(after(&[("Alert-Info", "<http://ring/classic.wav>")]), None);
        assert_eq!(after(&[]), None);
    }

    #[test]
    fn a_call_ends_in_after_call_work_then_the_configured_state() {
        let t0 = base();
        let rules = WrapupRules {
            max_time: Duration::from_secs(30),
            then_not_ready: None,
        };
        let mut agent = Agent::new(t0);
        assert_eq!(agent.refusal(true), None);
        assert!(agent.call_started(t0));
        assert_eq!(agent.refusal(true), Some(486));
        assert_eq!(agent.refusal(false), None, "call waiting for other calls");
        assert!(agent.calls_ended(t0 + Duration::from_secs(60), &rules));
        assert_eq!(agent.state(), &AgentState::AfterCallWork);
        assert_eq!(agent.refusal(true), Some(480));
        assert_eq!(agent.refusal(false), None);
        assert_eq!(agent.deadline(), Some(t0 + Duration::from_secs(90)));
        assert!(!agent.handle_timeout(t0 + Duration::from_secs(89), &rules));
        assert!(agent.handle_timeout(t0 + Duration::from_secs(90), &rules));
        assert_eq!(agent.state(), &AgentState::Ready);
        // Wrap-up submitted early, then not ready by configuration.
        let paused = WrapupRules {
            then_not_ready: Some("pause".into()),
            ..rules
        };
        agent.call_started(t0);
        agent.calls_ended(t0, &paused);
        assert!(agent.wrapup_done(t0 + Duration::from_secs(5), &paused));
        assert_eq!(
            agent.state(),
            &AgentState::NotReady {
                reason: "pause".into()
            }
        );
        assert_eq!(agent.deadline(), None);
        // No after-call work configured: ready at once.
        agent.choose(AgentState::Ready, t0);
        agent.call_started(t0);
        agent.calls_ended(t0, &WrapupRules::default());
        assert_eq!(agent.state(), &AgentState::Ready);
        // On-call and after-call work cannot be chosen.
        assert!(!agent.choose(AgentState::OnCall, t0));
        assert!(agent.choose(AgentState::LoggedOut, t0));
        assert_eq!(agent.refusal(true), Some(480));
        assert_eq!(agent.refusal(false), Some(480));
        // A call while logged out leaves the agent logged out.
        assert!(!agent.call_started(t0));
        assert!(!agent.calls_ended(t0, &rules));
        assert_eq!(agent.state(), &AgentState::LoggedOut);
    }
}
