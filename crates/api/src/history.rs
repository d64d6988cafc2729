//! The call history the desktop app shows: built from the phone's events, kept in memory only,
//! numbers masked (only the last four digits shown) before they are stored.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::Event;

/// Rows kept; older ones are forgotten.
const MAX_ENTRIES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Incoming,
    Outgoing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Answered,
    /// Answered, then handed to someone else (blind or attended transfer).
    Transferred,
    /// Incoming, never answered, ended by the caller or the no-answer timeout.
    Missed,
    Declined,
    Busy,
    /// Outgoing, given up by us before an answer.
    Cancelled,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct HistoryEntry {
    /// The phone's call id.
    pub id: u32,
    /// Unix time of the first event of the call, ms.
    pub started_at_ms: f64,
    pub direction: Direction,
    /// The other party's number or user, masked but for its last four characters.
    pub number: String,
    /// Seconds from answer to end (0 if never answered).
    pub duration_s: f64,
    pub result: CallResult,
}

#[derive(Debug, Default)]
pub struct CallHistory {
    ongoing: HashMap<u32, Ongoing>,
    ended: Vec<HistoryEntry>,
}

#[derive(Debug)]
struct Ongoing {
    started_at_ms: f64,
    direction: Direction,
    number: String,
    answered: bool,
    declined: bool,
}

impl CallHistory {
    /// Takes in an event at `now_ms` (Unix ms); `true` when a row was added.
    pub fn observe(&mut self, event: &Event, now_ms: f64) -> bool {
        match event {
            Event::Incoming { call, from, .. } => {
                self.start(*call, now_ms, Direction::Incoming, from);
            }
            Event::Calling { call, to } => self.start(*call, now_ms, Direction::Outgoing, to),
            Event::Established { call, .. } | Event::Answered { call, .. } => {
                if let Some(ongoing) = self.ongoing.get_mut(call) {
                    ongoing.answered = true;
                }
            }
            Event::Ended {
                call,
                code,
                stats,
                reason,
                ..
            } => {
                let Some(ongoing) = self.ongoing.remove(call) else {
                    return false;
                };
                let result = match (ongoing.answered, ongoing.direction, code) {
                    (true, ..) if reason == "transferred" => CallResult::Transferred,
                    (true, ..) => CallResult::Answered,
                    (false, Direction::Incoming, _) if ongoing.declined => CallResult::Declined,
                    (false, Direction::Incoming, _) => CallResult::Missed,
                    (false, Direction::Outgoing, Some(486 | 600)) => CallResult::Busy,
                    (false, Direction::Outgoing, Some(487) | None) => CallResult::Cancelled,
                    (false, Direction::Outgoing, _) => CallResult::Failed,
                };
                self.ended.push(HistoryEntry {
                    id: *call,
                    started_at_ms: ongoing.started_at_ms,
                    direction: ongoing.direction,
                    number: ongoing.number,
                    duration_s: (stats.duration_s * 10.0).round() / 10.0,
                    result,
                });
                if self.ended.len() > MAX_ENTRIES {
                    self.ended.remove(0);
                }
                return true;
            }
            _ => {}
        }
        false
    }

    /// Notes that the agent declined `call` (the phone reports it as an ordinary end).
    pub fn declined(&mut self, call: u32) {
        if let Some(ongoing) = self.ongoing.get_mut(&call) {
            ongoing.declined = true;
        }
    }

    /// Newest first.
    pub fn entries(&self) -> Vec<HistoryEntry> {
        self.ended.iter().rev().cloned().collect()
    }

    fn start(&mut self, call: u32, now_ms: f64, direction: Direction, party: &str) {
        self.ongoing.insert(
            call,
            Ongoing {
                started_at_ms: now_ms,
                direction,
                number: mask_number(&party_number(party)),
                answered: false,
                declined: false,
            },
        );
    }
}

/// The user part of a SIP URI in a From/To value (`"Name" <sip:+33612345678@host>` gives
/// `+33612345678`), or the value itself when it is not a URI.
pub fn party_number(party: &str) -> String {
    let uri = match (party.find('<'), party.rfind('>')) {
        (Some(open), Some(close)) if open < close => &party[open + 1..close],
        _ => party.trim(),
    };
    let rest = ["sips:", "sip:", "tel:"]
        .iter()
        .find_map(|scheme| uri.strip_prefix(scheme))
        .unwrap_or(uri);
    let user = rest.split(['@', ';', '?']).next().unwrap_or_default();
    user.to_owned()
}

/// Every character but the last four replaced by `•` (at least the first half is hidden for
/// short values).
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let shown = 4.min(chars.len() / 2);
    let hidden = chars.len() - shown;
    std::iter::repeat_n('•', hidden)
        .chain(chars[hidden..].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallStats;

    fn ended(call: u32, code: Option<u16>, duration_s: f64) -> Event {
        Event::Ended {
            call,
            reason: "x".into(),
            normal: code.is_none(),
            code,
            detail: String::new(),
            stats: CallStats {
                duration_s,
                ..CallStats::default()
            },
        }
    }

    #[test]
    fn numbers_are_masked_but_the_last_four_digits() {
        assert_eq!(
            party_number("\"Jean Dupont\" <sip:+33612345678@10.0.0.1;transport=udp>"),
            "+33612345678"
        );
        assert_eq!(party_number("sip:agent@127.0.0.1:5060"), "agent");
        assert_eq!(party_number("tel:0612345678"), "0612345678");
        assert_eq!(mask_number("+33612345678"), "••••••••5678");
        assert_eq!(mask_number("1234"), "••34");
        assert_eq!(mask_number(""), "");
    }

    #[test]
    fn rows_follow_the_calls() {
        let mut history = CallHistory::default();
        let incoming = Event::Incoming {
            call: 1,
            from: "<sip:+33612345678@pbx>".into(),
            to: "sip:agent@pbx".into(),
        };
        assert!(!history.observe(&incoming, 1000.0));
        history.observe(
            &Event::Answered {
                call: 1,
                auto: false,
            },
            2000.0,
        );
        assert!(history.observe(&ended(1, None, 12.34), 14_000.0));
        // An unanswered incoming call, one declined, an outgoing busy one, one we cancelled.
        history.observe(
            &Event::Incoming {
                call: 2,
                from: "sip:0611112222@pbx".into(),
                to: String::new(),
            },
            20_000.0,
        );
        history.observe(&ended(2, Some(487), 0.0), 25_000.0);
        history.observe(
            &Event::Incoming {
                call: 5,
                from: "sip:0611113333@pbx".into(),
                to: String::new(),
            },
            26_000.0,
        );
        history.declined(5);
        history.observe(&ended(5, None, 0.0), 26_500.0);
        history.observe(
            &Event::Calling {
                call: 3,
                to: "sip:0699998888@pbx".into(),
            },
            30_000.0,
        );
        history.observe(&ended(3, Some(486), 0.0), 31_000.0);
        history.observe(
            &Event::Calling {
                call: 4,
                to: "sip:0699997777@pbx".into(),
            },
            32_000.0,
        );
        history.observe(&ended(4, Some(487), 0.0), 33_000.0);
        let rows = history.entries();
        let results: Vec<_> = rows.iter().map(|row| row.result).collect();
        assert_eq!(
            results,
            [
                CallResult::Cancelled,
                CallResult::Busy,
                CallResult::Declined,
                CallResult::Missed,
                CallResult::Answered
            ]
        );
        let first = &rows[4];
        assert_eq!(first.number, "••••••••5678");
        assert_eq!(first.direction, Direction::Incoming);
        assert_eq!(first.started_at_ms, 1000.0);
        assert_eq!(first.duration_s, 12.3);
        assert_eq!(rows[1].direction, Direction::Outgoing);
        // No unmasked digits anywhere.
        let json = serde_json::to_string(&rows).unwrap();
        assert!(
            !json.contains("0699998888") && !json.contains("33612345678"),
            "{json}"
        );
        // Ended without a start: ignored.
        assert!(!history.observe(&ended(9, None, 1.0), 40_000.0));
        // Answered, then transferred.
        history.observe(
            &Event::Incoming {
                call: 6,
                from: "sip:0611114444@pbx".into(),
                to: String::new(),
            },
            41_000.0,
        );
        history.observe(
            &Event::Answered {
                call: 6,
                auto: false,
            },
            42_000.0,
        );
        let mut transferred = ended(6, None, 5.0);
        if let Event::Ended { reason, .. } = &mut transferred {
            *reason = "transferred".into();
        }
        assert!(history.observe(&transferred, 47_000.0));
        assert_eq!(history.entries()[0].result, CallResult::Transferred);
    }
}
