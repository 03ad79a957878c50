//! The phone side's session descriptions: one audio line of RTP/AVP with G.711 (PCMU, PCMA)
//! and RFC 4733 telephone events, written for our offers and answers and read from the
//! carrier's. Only what a G.711 leg needs is read; anything else in a description is ignored.

use std::net::{IpAddr, SocketAddr};

/// The G.711 law a phone leg speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// μ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Law {
    /// Its static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }
}

/// The payload type we offer telephone events at.
pub const EVENT_PT: u8 = 101;

/// What one side of a phone leg receives on: where to send it RTP, in which law, and the
/// payload type of its telephone events, if it takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioLine {
    /// Its RTP address.
    pub addr: SocketAddr,
    /// The law it receives (the first G.711 one it lists).
    pub law: Law,
    /// Its payload type for RFC 4733 events, if it lists them.
    pub events: Option<u8>,
}

/// Why a description cannot carry a phone leg.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No connection address, or none that parses.
    #[error("no connection address")]
    NoAddress,
    /// No audio line with a port.
    #[error("no audio line")]
    NoAudio,
    /// The audio line lists neither PCMU nor PCMA.
    #[error("no G.711 payload type")]
    NoG711,
}

/// Our description: audio at `addr` in `laws` (preferred first) with telephone events.
pub fn describe(addr: SocketAddr, laws: &[Law], session_id: u64) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => format!("IP4 {ip}"),
        IpAddr::V6(ip) => format!("IP6 {ip}"),
    };
    let mut pts: Vec<String> = laws.iter().map(|l| l.payload_type().to_string()).collect();
    pts.push(EVENT_PT.to_string());
    let mut sdp = format!(
        "v=0\r\no=- {session_id} 1 IN {ip}\r\ns=bevy_calling\r\nc=IN {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {}\r\n",
        addr.port(),
        pts.join(" ")
    );
    for law in laws {
        let name = match law {
            Law::Pcmu => "PCMU",
            Law::Pcma => "PCMA",
        };
        sdp.push_str(&format!("a=rtpmap:{} {name}/8000\r\n", law.payload_type()));
    }
    sdp.push_str(&format!(
        "a=rtpmap:{EVENT_PT} telephone-event/8000\r\na=fmtp:{EVENT_PT} 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    ));
    sdp
}

/// Reads the audio line of a description.
pub fn read(sdp: &str) -> Result<AudioLine, SdpError> {
    let mut session_ip = None;
    let mut media_ip = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut events = None;
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            let mut fields = rest.split_whitespace();
            in_audio = fields.next() == Some("audio") && audio.is_none();
            if in_audio {
                let port = fields.next().and_then(|p| p.parse().ok());
                let pts = fields.skip(1).filter_map(|p| p.parse().ok()).collect();
                audio = port.map(|port| (port, pts));
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            let ip = rest
                .split_whitespace()
                .nth(2)
                .and_then(|ip| ip.parse().ok());
            match audio.is_some() {
                true if in_audio => media_ip = ip,
                true => {}
                false => session_ip = ip,
            }
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:")
            && in_audio
            && let Some((pt, name)) = rest.split_once(' ')
            && name
                .to_ascii_lowercase()
                .starts_with("telephone-event/8000")
        {
            events = pt.parse().ok();
        }
    }
    let (port, pts) = audio.ok_or(SdpError::NoAudio)?;
    let ip: IpAddr = media_ip.or(session_ip).ok_or(SdpError::NoAddress)?;
    let law = pts
        .iter()
        .find_map(|&pt| Law::from_payload_type(pt))
        .ok_or(SdpError::NoG711)?;
    Ok(AudioLine {
        addr: SocketAddr::new(ip, port),
        law,
        events: events.filter(|pt| pts.contains(pt)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_description_reads_back() {
        let addr: SocketAddr = "10.0.0.7:40002".parse().unwrap();
        let sdp = describe(addr, &[Law::Pcma, Law::Pcmu], 7);
        assert_eq!(
            read(&sdp),
            Ok(AudioLine {
                addr,
                law: Law::Pcma,
                events: Some(EVENT_PT)
            })
        );
    }

    #[test]
    fn a_carriers_answer_is_read_and_bad_ones_are_refused() {
        let sipp = "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\n\
                    t=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";
        let line = read(sipp).unwrap();
        assert_eq!(line.addr, "127.0.0.1:6000".parse().unwrap());
        assert_eq!((line.law, line.events), (Law::Pcmu, None));
        assert_eq!(read("v=0\nc=IN IP4 1.2.3.4\n"), Err(SdpError::NoAudio));
        assert_eq!(read("v=0\nm=audio 5 RTP/AVP 0\n"), Err(SdpError::NoAddress));
        let g729 = "c=IN IP4 1.2.3.4\nm=audio 5 RTP/AVP 18\n";
        assert_eq!(read(g729), Err(SdpError::NoG711));
        assert_eq!(read("\u{0}garbage\r\nm=audio x"), Err(SdpError::NoAudio));
    }
}
