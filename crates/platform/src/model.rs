//! What the contract carries: wrap-ups and agent states.

use serde::{Deserialize, Serialize};

/// A call's wrap-up (disposition and note), as posted to `POST /wrapups`.
///
/// Only these fields are ever stored locally: no customer data beyond what the agent typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrapup {
    /// Random 128-bit key in lowercase hex; the `Idempotency-Key` of every post.
    pub key: String,
    /// The SIP Call-ID of the call.
    pub call_id: String,
    /// The agent's platform identifier.
    pub agent: String,
    /// A disposition code from the platform's list.
    pub disposition: String,
    /// Free text typed by the agent.
    pub note: String,
    /// When the call ended, milliseconds since the Unix epoch.
    pub ended_at_ms: u64,
}

impl Wrapup {
    /// A wrap-up with a fresh random key (128 bits from the OS-seeded thread RNG).
    pub fn new(
        call_id: impl Into<String>,
        agent: impl Into<String>,
        disposition: impl Into<String>,
        note: impl Into<String>,
        ended_at_ms: u64,
    ) -> Self {
        Wrapup {
            key: format!("{:032x}", rand::random::<u128>()),
            call_id: call_id.into(),
            agent: agent.into(),
            disposition: disposition.into(),
            note: note.into(),
            ended_at_ms,
        }
    }
}

/// The agent's state, as sent to `PUT /agents/{agent}/state`:
/// `{"state":"ready"|"not_ready"|"on_call"|"after_call_work"|"logged_out","reason":string|null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StateWire", try_from = "StateWire")]
pub enum AgentState {
    /// Not logged in.
    LoggedOut,
    /// Waiting for a call.
    Ready,
    /// On a break (lunch, training, …); `reason` is the platform's reason code.
    NotReady {
        /// Why, e.g. `lunch`.
        reason: String,
    },
    /// In a call.
    OnCall,
    /// Finishing the wrap-up after a call.
    AfterCallWork,
}

#[derive(Serialize, Deserialize)]
struct StateWire {
    state: StateName,
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateName {
    LoggedOut,
    Ready,
    NotReady,
    OnCall,
    AfterCallWork,
}

impl From<AgentState> for StateWire {
    fn from(state: AgentState) -> Self {
        let (state, reason) = match state {
            AgentState::LoggedOut => (StateName::LoggedOut, None),
            AgentState::Ready => (StateName::Ready, None),
            AgentState::NotReady { reason } => (StateName::NotReady, Some(reason)),
            AgentState::OnCall => (StateName::OnCall, None),
            AgentState::AfterCallWork => (StateName::AfterCallWork, None),
        };
        StateWire { state, reason }
    }
}

impl TryFrom<StateWire> for AgentState {
    type Error = &'static str;

    fn try_from(wire: StateWire) -> Result<Self, Self::Error> {
        Ok(match wire.state {
            StateName::LoggedOut => AgentState::LoggedOut,
            StateName::Ready => AgentState::Ready,
            // The platform may force not_ready without saying why.
            StateName::NotReady => AgentState::NotReady {
                reason: wire.reason.unwrap_or_default(),
            },
            StateName::OnCall => AgentState::OnCall,
            StateName::AfterCallWork => AgentState::AfterCallWork,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_128_bit_hex_and_distinct() {
        let a = Wrapup::new("c", "a", "sale", "", 1);
        let b = Wrapup::new("c", "a", "sale", "", 1);
        assert_eq!(a.key.len(), 32);
        assert!(
            a.key
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(a.key, b.key);
    }

    #[test]
    fn states_use_the_contract_wire_form() {
        let cases = [
            (AgentState::Ready, r#"{"state":"ready","reason":null}"#),
            (
                AgentState::NotReady {
                    reason: "lunch".into(),
                },
                r#"{"state":"not_ready","reason":"lunch"}"#,
            ),
            (
                AgentState::AfterCallWork,
                r#"{"state":"after_call_work","reason":null}"#,
            ),
            (AgentState::OnCall, r#"{"state":"on_call","reason":null}"#),
            (
                AgentState::LoggedOut,
                r#"{"state":"logged_out","reason":null}"#,
            ),
        ];
        for (state, json) in cases {
            assert_eq!(serde_json::to_string(&state).ok().as_deref(), Some(json));
            assert_eq!(serde_json::from_str::<AgentState>(json).ok(), Some(state));
        }
        assert!(serde_json::from_str::<AgentState>(r#"{"state":"asleep","reason":null}"#).is_err());
    }
}
