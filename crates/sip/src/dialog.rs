//! Dialogs (RFC 3261 §12): state shared by the requests of one call leg.
//!
//! A [`Dialog`] is plain data plus builders; it sends nothing. Build it with
//! [`Dialog::uac`] from the INVITE sent and a 1xx-with-tag/2xx received, or with
//! [`Dialog::uas`] from the INVITE received and the local tag. Look dialogs up with
//! [`DialogId::of_incoming_request`] / [`DialogId::of_response`].

use crate::message::{Method, NameAddr, Request, Response, Scheme, Uri, Via};

/// Call-ID + local tag + remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog an incoming request belongs to (local tag = To tag).
    /// `None` without a To tag (not in a dialog).
    pub fn of_incoming_request(request: &Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: request.headers.call_id()?.to_owned(),
            local_tag: request.headers.to()?.tag()?.to_owned(),
            remote_tag: request.headers.from()?.tag()?.to_owned(),
        })
    }

    /// The id of the dialog a response to a request we sent belongs to.
    pub fn of_response(response: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: response.headers.call_id()?.to_owned(),
            local_tag: response.headers.from()?.tag()?.to_owned(),
            remote_tag: response.headers.to()?.tag()?.to_owned(),
        })
    }
}

/// Early (1xx with tag) or confirmed (2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
}

/// Why a dialog could not be created or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    #[error("missing or malformed {0}")]
    MissingHeader(&'static str),
    #[error("missing {0} tag")]
    MissingTag(&'static str),
    #[error("response does not create a dialog")]
    NotDialogCreating,
    /// Answer 500 (RFC 3261 §12.2.2).
    #[error("CSeq lower than or equal to the last one")]
    CSeqOutOfOrder,
    #[error("message belongs to another dialog")]
    WrongDialog,
}

/// One dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// Our address with our tag (From of our requests).
    pub local_uri: NameAddr,
    /// Their address with their tag (To of our requests).
    pub remote_uri: NameAddr,
    /// CSeq of the last request we sent (ACK/CANCEL excepted).
    pub local_seq: u32,
    /// CSeq of the last request received, if any.
    pub remote_seq: Option<u32>,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Our Contact, put in target-refresh requests.
    pub local_contact: Option<NameAddr>,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<NameAddr>,
    /// Created over SIPS.
    pub secure: bool,
}

impl Dialog {
    /// UAC side: from the INVITE we sent and a 101–199 with a To tag (early) or a 2xx
    /// (confirmed).
    pub fn uac(invite: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let state = match response.status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            _ => return Err(DialogError::NotDialogCreating),
        };
        let call_id = invite
            .headers
            .call_id()
            .ok_or(DialogError::MissingHeader("Call-ID"))?;
        let local_uri = invite
            .headers
            .from()
            .ok_or(DialogError::MissingHeader("From"))?;
        let remote_uri = response
            .headers
            .to()
            .ok_or(DialogError::MissingHeader("To"))?;
        let local_seq = invite
            .headers
            .cseq()
            .ok_or(DialogError::MissingHeader("CSeq"))?
            .seq;
        let id = DialogId {
            call_id: call_id.to_owned(),
            local_tag: local_uri
                .tag()
                .ok_or(DialogError::MissingTag("From"))?
                .to_owned(),
            remote_tag: remote_uri
                .tag()
                .ok_or(DialogError::MissingTag("To"))?
                .to_owned(),
        };
        let remote_target = match response.headers.contacts().into_iter().next() {
            Some(contact) => contact.uri,
            None if state == DialogState::Early => invite.uri.clone(),
            None => return Err(DialogError::MissingHeader("Contact")),
        };
        let mut route_set = response.headers.record_routes();
        route_set.reverse();
        Ok(Dialog {
            id,
            state,
            local_uri,
            remote_uri,
            local_seq,
            remote_seq: None,
            remote_target,
            local_contact: invite.headers.contacts().into_iter().next(),
            route_set,
            secure: invite.uri.scheme == Scheme::Sips,
        })
    }

    /// UAS side: from the INVITE received and the tag we put in To. The dialog starts
    /// early; call [`confirm`](Self::confirm) once the 2xx is sent.
    pub fn uas(
        invite: &Request,
        local_tag: &str,
        local_contact: Option<NameAddr>,
    ) -> Result<Dialog, DialogError> {
        let h = &invite.headers;
        let call_id = h.call_id().ok_or(DialogError::MissingHeader("Call-ID"))?;
        let remote_uri = h.from().ok_or(DialogError::MissingHeader("From"))?;
        let mut local_uri = h.to().ok_or(DialogError::MissingHeader("To"))?;
        local_uri.set_tag(local_tag);
        let remote_seq = h.cseq().ok_or(DialogError::MissingHeader("CSeq"))?.seq;
        let remote_target = h
            .contacts()
            .into_iter()
            .next()
            .ok_or(DialogError::MissingHeader("Contact"))?
            .uri;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: remote_uri
                    .tag()
                    .ok_or(DialogError::MissingTag("From"))?
                    .to_owned(),
            },
            state: DialogState::Early,
            local_uri,
            remote_uri,
            local_seq: 0,
            remote_seq: Some(remote_seq),
            remote_target,
            local_contact,
            route_set: h.record_routes(),
            secure: invite.uri.scheme == Scheme::Sips,
        })
    }

    pub fn confirm(&mut self) {
        self.state = DialogState::Confirmed;
    }

    /// Builds an in-dialog request (not ACK, not CANCEL): CSeq is incremented, the
    /// Request-URI and Route follow the route set (loose or strict routing). `via` is the
    /// top Via with a fresh branch.
    pub fn request(&mut self, method: Method, via: &Via) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        self.build(method, self.local_seq, via)
    }

    /// The ACK for a 2xx to the INVITE whose CSeq number was `invite_seq`.
    pub fn ack_for_2xx(&self, invite_seq: u32, via: &Via) -> Request {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: &Via) -> Request {
        let loose = self
            .route_set
            .first()
            .is_none_or(|r| r.uri.params.contains("lr"));
        let (uri, routes): (Uri, Vec<String>) = if loose {
            let routes = self.route_set.iter().map(ToString::to_string).collect();
            (self.remote_target.clone(), routes)
        } else {
            // Strict routing (RFC 3261 §12.2.1.1): first route becomes the Request-URI.
            let mut routes: Vec<String> = self
                .route_set
                .iter()
                .skip(1)
                .map(ToString::to_string)
                .collect();
            routes.push(format!("<{}>", self.remote_target));
            let first = self.route_set.first().map(|r| r.uri.without_params());
            (first.unwrap_or_else(|| self.remote_target.clone()), routes)
        };
        let refresh = matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        );
        let mut request = Request::new(method.clone(), uri);
        let h = &mut request.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        for route in routes {
            h.push("Route", route);
        }
        h.push("From", self.local_uri.to_string());
        h.push("To", self.remote_uri.to_string());
        h.push("Call-ID", self.id.call_id.clone());
        h.push("CSeq", format!("{seq} {method}"));
        if let (true, Some(contact)) = (refresh, &self.local_contact) {
            h.push("Contact", contact.to_string());
        }
        request
    }

    /// Checks an incoming in-dialog request: dialog id and CSeq order (ACK and CANCEL
    /// excepted). A target-refresh request (INVITE, UPDATE) with a Contact updates the
    /// remote target.
    pub fn receive_request(&mut self, request: &Request) -> Result<(), DialogError> {
        if DialogId::of_incoming_request(request).as_ref() != Some(&self.id) {
            return Err(DialogError::WrongDialog);
        }
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            let seq = request
                .headers
                .cseq()
                .ok_or(DialogError::MissingHeader("CSeq"))?
                .seq;
            if self.remote_seq.is_some_and(|last| seq <= last) {
                return Err(DialogError::CSeqOutOfOrder);
            }
            self.remote_seq = Some(seq);
        }
        if matches!(request.method, Method::Invite | Method::Update) {
            if let Some(contact) = request.headers.contacts().into_iter().next() {
                self.remote_target = contact.uri;
            }
        }
        Ok(())
    }

    /// Applies a response to a request we sent in this dialog: a 2xx confirms an early
    /// dialog (recomputing the route set) and a 2xx to INVITE/UPDATE refreshes the target.
    pub fn receive_response(&mut self, response: &Response) -> Result<(), DialogError> {
        if DialogId::of_response(response).as_ref() != Some(&self.id) {
            return Err(DialogError::WrongDialog);
        }
        if !response.is_success() {
            return Ok(());
        }
        let method = response.headers.cseq().map(|c| c.method);
        if self.state == DialogState::Early && method == Some(Method::Invite) {
            self.state = DialogState::Confirmed;
            let mut route_set = response.headers.record_routes();
            route_set.reverse();
            self.route_set = route_set;
        }
        if matches!(method, Some(Method::Invite | Method::Update)) {
            if let Some(contact) = response.headers.contacts().into_iter().next() {
                self.remote_target = contact.uri;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::generate_branch;

    fn invite() -> Request {
        let mut r = Request::new(Method::Invite, "sip:bob@b.example".parse().unwrap());
        r.headers
            .push("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1");
        r.headers.push("Record-Route", "<sip:p1.example;lr>");
        r.headers.push("Record-Route", "<sip:p2.example;lr>");
        r.headers
            .push("From", "\"Alice\" <sip:alice@a.example>;tag=ta");
        r.headers.push("To", "<sip:bob@b.example>");
        r.headers.push("Call-ID", "c1");
        r.headers.push("CSeq", "10 INVITE");
        r.headers.push("Contact", "<sip:alice@192.0.2.1:5060>");
        r
    }

    fn answer(invite: &Request, status: u16) -> Response {
        let mut r = Response::from_request(invite, status, "", Some("tb"));
        r.headers.push("Contact", "<sip:bob@192.0.2.2:5070>");
        r
    }

    fn via(n: u64) -> Via {
        Via::new("UDP", "192.0.2.1", Some(5060), &generate_branch(n))
    }

    #[test]
    fn uac_and_uas_agree() {
        let inv = invite();
        let early = Dialog::uac(&inv, &answer(&inv, 180)).unwrap();
        assert_eq!(early.state, DialogState::Early);
        let mut uac = early.clone();
        uac.receive_response(&answer(&inv, 200)).unwrap();
        assert_eq!(uac.state, DialogState::Confirmed);
        assert_eq!(uac, Dialog::uac(&inv, &answer(&inv, 200)).unwrap());
        assert_eq!(uac.id.local_tag, "ta");
        assert_eq!(uac.id.remote_tag, "tb");
        assert_eq!(uac.remote_target.to_string(), "sip:bob@192.0.2.2:5070");
        let hosts: Vec<&str> = uac.route_set.iter().map(|r| r.uri.host.as_str()).collect();
        assert_eq!(
            hosts,
            vec!["p2.example", "p1.example"],
            "UAC reverses Record-Route"
        );

        let mut uas = Dialog::uas(&inv, "tb", None).unwrap();
        let hosts: Vec<&str> = uas.route_set.iter().map(|r| r.uri.host.as_str()).collect();
        assert_eq!(hosts, vec!["p1.example", "p2.example"]);
        assert_eq!(uas.id.local_tag, uac.id.remote_tag);
        assert_eq!(uas.id.remote_tag, uac.id.local_tag);
        assert_eq!(uas.remote_target.to_string(), "sip:alice@192.0.2.1:5060");

        // A BYE from the UAC is accepted by the UAS dialog.
        let bye = uac.request(Method::Bye, &via(2));
        assert_eq!(bye.headers.cseq().unwrap().seq, 11);
        assert_eq!(bye.uri, uac.remote_target);
        assert_eq!(bye.headers.routes()[0].uri.host, "p2.example");
        assert_eq!(DialogId::of_incoming_request(&bye), Some(uas.id.clone()));
        uas.receive_request(&bye).unwrap();
        assert_eq!(uas.remote_seq, Some(11));
        // Printed and parsed back, still valid.
        assert!(crate::message::Message::parse(&bye.to_bytes()).is_ok());
        // A replay is out of order.
        assert_eq!(uas.receive_request(&bye), Err(DialogError::CSeqOutOfOrder));
        // A request from another dialog is refused.
        let mut other = bye.clone();
        other.headers.set("Call-ID", "zz");
        assert_eq!(uas.receive_request(&other), Err(DialogError::WrongDialog));
    }

    #[test]
    fn ack_and_target_refresh() {
        let inv = invite();
        let mut uac = Dialog::uac(&inv, &answer(&inv, 200)).unwrap();
        let ack = uac.ack_for_2xx(10, &via(3));
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "10 ACK");
        assert_eq!(uac.local_seq, 10, "ACK does not consume a CSeq");
        assert_eq!(ack.headers.to().unwrap().tag(), Some("tb"));

        let mut uas = Dialog::uas(&inv, "tb", None).unwrap();
        uas.receive_request(&ack).unwrap();
        // re-INVITE with a new Contact refreshes the target on the UAS side.
        uac.local_contact = Some(NameAddr::parse("<sip:alice@198.51.100.1:5062>").unwrap());
        let reinvite = uac.request(Method::Invite, &via(4));
        assert_eq!(reinvite.headers.contacts().len(), 1);
        uas.receive_request(&reinvite).unwrap();
        assert_eq!(uas.remote_target.to_string(), "sip:alice@198.51.100.1:5062");
        // A 2xx to the re-INVITE with a new Contact refreshes the UAC target.
        let mut ok = Response::from_request(&reinvite, 200, "", None);
        ok.headers.push("Contact", "<sip:bob@203.0.113.5>");
        uac.receive_response(&ok).unwrap();
        assert_eq!(uac.remote_target.host, "203.0.113.5");
        // BYE carries no Contact.
        assert!(
            uac.request(Method::Bye, &via(5))
                .headers
                .contacts()
                .is_empty()
        );
    }

    #[test]
    fn strict_routing() {
        let inv = invite();
        let mut resp = answer(&inv, 200);
        resp.headers.remove("Record-Route");
        resp.headers
            .push("Record-Route", "<sip:strict.example;maddr=x>");
        resp.headers.push("Record-Route", "<sip:edge.example;lr>");
        let mut uac = Dialog::uac(&inv, &resp).unwrap();
        // UAC order is reversed: edge (loose) first, so the target is the Request-URI.
        assert_eq!(uac.request(Method::Info, &via(6)).uri, uac.remote_target);
        uac.route_set.reverse(); // Now the strict router comes first.
        let req = uac.request(Method::Info, &via(7));
        assert_eq!(req.uri.to_string(), "sip:strict.example");
        let routes = req.headers.routes();
        assert_eq!(routes.last().unwrap().uri, uac.remote_target);
        assert_eq!(routes.len(), 2);
    }

    #[test]
    fn creation_errors() {
        let inv = invite();
        assert_eq!(
            Dialog::uac(&inv, &answer(&inv, 486)).err(),
            Some(DialogError::NotDialogCreating)
        );
        let no_tag = Response::from_request(&inv, 180, "", None);
        assert_eq!(
            Dialog::uac(&inv, &no_tag).err(),
            Some(DialogError::MissingTag("To"))
        );
        let mut no_contact = Response::from_request(&inv, 200, "", Some("x"));
        no_contact.headers.remove("Contact");
        assert_eq!(
            Dialog::uac(&inv, &no_contact).err(),
            Some(DialogError::MissingHeader("Contact"))
        );
        let mut bad = inv.clone();
        bad.headers.remove("Contact");
        assert_eq!(
            Dialog::uas(&bad, "t", None).err(),
            Some(DialogError::MissingHeader("Contact"))
        );
    }
}
