//! Real SIP peers on loopback, each started in a temp dir with its log captured, and
//! stopped (whole process group) on `Drop`.

pub mod baresip;
pub mod homeagent;
pub mod kamailio;
pub mod linphonec;
pub mod sipp;

pub use baresip::{Baresip, BaresipOpts, Codec, SipAccount, SipTrace, Transport};
pub use homeagent::{HomeagentProcess, homeagent_bin};
pub use kamailio::{Kamailio, KamailioOpts};
pub use linphonec::Linphonec;
pub use sipp::{Sipp, SippResult, SippRun};
