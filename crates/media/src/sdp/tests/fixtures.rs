//! SDP bodies: real captures from Chrome, baresip 1.0 and linphonec, and bodies in their style.

/// A real Chrome 156 offer (from `shared/peers/browser/fixtures`), LF line ends.
pub const CHROME_OFFER: &str = "\
v=0
o=- 3623715071595016951 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS 7a676342-49f6-4ea6-8e3d-cd524803abb8
m=audio 34902 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 127.0.0.1
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1345524808 1 udp 2122194687 127.0.0.1 34902 typ host generation 0 network-id 3 network-cost 50
a=candidate:788330192 1 tcp 1518214911 127.0.0.1 9 typ host tcptype active generation 0 network-id 3 network-cost 50
a=ice-ufrag:6Kcr
a=ice-pwd:U617hp8F2wPqJF8sBaGutxuQ
a=ice-options:trickle
a=fingerprint:sha-256 28:CB:31:24:C4:DE:22:B4:EB:1D:B3:C8:FF:F1:9A:7D:30:96:7A:D0:54:DA:58:23:FD:A9:59:53:0A:3A:BC:29
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:7a676342-49f6-4ea6-8e3d-cd524803abb8 9fdb3638-3a37-41a4-a6e0-184c4a3bfc33
a=rtcp-mux
a=rtcp-rsize
a=rtcp-xr:rcvr-rtt=all
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:320007702 cname:mypU9qeLhxNbLfFA
a=ssrc:320007702 msid:7a676342-49f6-4ea6-8e3d-cd524803abb8 9fdb3638-3a37-41a4-a6e0-184c4a3bfc33
";

/// In the style of baresip 1.0 (Opus at dynamic PT 96, DTMF 101 with `0-15`).
pub const BARESIP_OFFER: &str = "v=0\r
o=- 1594867455 2077372546 IN IP4 192.168.1.2\r
s=-\r
c=IN IP4 192.168.1.2\r
t=0 0\r
a=tool:baresip 1.0.0\r
m=audio 15530 RTP/AVP 96 0 8 101\r
b=AS:165\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 stereo=1;sprop-stereo=1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=sendrecv\r
a=label:1\r
a=ssrc:1441232541 cname:4b1a7f0e-3a35-4b43-a9b4-6e9a1c1b0d2b\r
a=rtcp-rsize\r
a=ptime:20\r
";

/// In the style of linphone (LF only, `a=rtcp`, several telephone-event rates, no PCMA).
pub const LINPHONE_OFFER: &str = "v=0
o=bob 2345 1284 IN IP4 10.0.0.7
s=Talk
c=IN IP4 10.0.0.7
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96
a=rtpmap:96 VP8/90000
a=rtcp-fb:* trr-int 1000
";

/// An SBC-style offer: SDES-SRTP audio first, plain RTP/AVP alternative second.
pub const SRTP_THEN_RTP_OFFER: &str = "v=0\r
o=sbc 1 1 IN IP4 203.0.113.5\r
s=session\r
c=IN IP4 203.0.113.5\r
t=0 0\r
m=audio 20000 RTP/SAVP 0 8\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r
m=audio 20002 RTP/AVP 8 0\r
a=sendrecv\r
";

/// A real baresip 1.0.0 INVITE offer (Debian package, captured on the bench).
pub const BARESIP_REAL_OFFER: &str = "v=0\r
o=- 2531536721 1119922431 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
a=tool:baresip 1.0.0\r
m=audio 9524 RTP/AVP 0 8 96 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 stereo=1;sprop-stereo=1\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=sendrecv\r
a=label:1\r
a=rtcp-rsize\r
a=ssrc:2602486401 cname:sip:cap@127.0.0.1\r
a=minptime:20\r
a=ptime:20\r
";

/// A real linphonec INVITE offer (Debian package, captured on the bench; IPv6).
pub const LINPHONE_REAL_OFFER: &str = "v=0\r
o=linphone 992 1288 IN IP6 fd00::2\r
s=Talk\r
c=IN IP6 fd00::2\r
t=0 0\r
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r
m=audio 7078 RTP/AVP 96 97 98 0 8 18 99 100 101\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 useinbandfec=1\r
a=rtpmap:97 speex/16000\r
a=fmtp:97 vbr=on\r
a=rtpmap:98 speex/8000\r
a=fmtp:98 vbr=on\r
a=fmtp:18 annexb=yes\r
a=rtpmap:99 telephone-event/48000\r
a=rtpmap:100 telephone-event/16000\r
a=rtpmap:101 telephone-event/8000\r
a=rtcp-fb:* trr-int 5000\r
a=rtcp-fb:* ccm tmmbr\r
";

/// baresip 1.0.0's real 200 OK answer to [`OUR_BENCH_OFFER`].
pub const BARESIP_REAL_ANSWER: &str = "v=0\r
o=- 3699944546 1228244585 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
a=tool:baresip 1.0.0\r
m=audio 12170 RTP/AVP 111 0 8 101\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 stereo=1;sprop-stereo=1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=sendrecv\r
a=label:1\r
a=ssrc:1261210534 cname:sip:cap@127.0.0.1\r
a=minptime:20\r
a=ptime:20\r
";

/// linphonec's real 200 OK answer to [`OUR_BENCH_OFFER`].
pub const LINPHONE_REAL_ANSWER: &str = "v=0\r
o=linphone 2359 3345 IN IP4 127.0.0.1\r
s=Talk\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 7078 RTP/AVP 111 0 8 110 101\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 useinbandfec=1\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:101 telephone-event/8000\r
";

/// The offer sent to baresip and linphonec to capture their answers: what `create_offer` writes
/// for 127.0.0.1:40000, Opus + PCMU + PCMA, DTMF, session 4242 version 1.
pub const OUR_BENCH_OFFER: &str = "v=0\r
o=- 4242 1 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 40000 RTP/AVP 111 0 8 110 101\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:110 telephone-event/48000\r
a=fmtp:110 0-16\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=sendrecv\r
";
