//! Identifiers of the calling domain, written the way the service and its tokens spell them.
//!
//! | kind | raw form | example |
//! |---|---|---|
//! | communication user | `8:acs:<id>` | `8:acs:alice` |
//! | phone number | `4:+<E.164>` | `4:+14255550123` |
//! | the test bot | `8:echo123` | `8:echo123` |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of a communication user's raw id.
const USER_PREFIX: &str = "8:acs:";
/// Prefix of a phone number's raw id.
const PHONE_PREFIX: &str = "4:+";
/// Raw id of the reserved test bot.
const ECHO_BOT: &str = "8:echo123";
/// Longest user id accepted after the `8:acs:` prefix.
const MAX_USER_ID_LEN: usize = 128;

/// Who takes part in a call: a user of this service, a phone number, or the echo test bot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommunicationIdentifier {
    /// A user of this service; holds the part after `8:acs:`.
    CommunicationUser(String),
    /// A phone number in E.164 form; holds the digits after `4:+`.
    PhoneNumber(String),
    /// The reserved audio test bot, `8:echo123`.
    EchoBot,
}

/// Why a string is not a valid [`CommunicationIdentifier`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// The string starts with no known prefix.
    #[error("`{0}` is not an identifier: expected `8:acs:<id>`, `4:+<E.164>` or `8:echo123`")]
    UnknownKind(String),
    /// The user id part is empty, too long, or has characters other than `A-Z a-z 0-9 - _ .`.
    #[error("`{0}` is not a valid user id: use 1 to 128 of A-Z a-z 0-9 - _ .")]
    BadUserId(String),
    /// The phone number is not 7 to 15 digits.
    #[error("`{0}` is not an E.164 phone number: expected 7 to 15 digits after `+`")]
    BadPhoneNumber(String),
}

impl CommunicationIdentifier {
    /// A communication user from the id part (without `8:acs:`), checked.
    pub fn user(id: &str) -> Result<Self, IdentifierError> {
        format!("{USER_PREFIX}{id}").parse()
    }

    /// A phone number's E.164 form with its `+` (`+15550001`), as SIP and people write it;
    /// `None` for anyone else.
    pub fn e164(&self) -> Option<String> {
        match self {
            Self::PhoneNumber(digits) => Some(format!("+{digits}")),
            _ => None,
        }
    }

    /// The identifier in its raw wire form, e.g. `8:acs:alice`.
    pub fn raw_id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for CommunicationIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CommunicationUser(id) => write!(f, "{USER_PREFIX}{id}"),
            Self::PhoneNumber(digits) => write!(f, "{PHONE_PREFIX}{digits}"),
            Self::EchoBot => f.write_str(ECHO_BOT),
        }
    }
}

impl FromStr for CommunicationIdentifier {
    type Err = IdentifierError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw == ECHO_BOT {
            return Ok(Self::EchoBot);
        }
        if let Some(id) = raw.strip_prefix(USER_PREFIX) {
            let valid = !id.is_empty()
                && id.len() <= MAX_USER_ID_LEN
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            return if valid {
                Ok(Self::CommunicationUser(id.to_owned()))
            } else {
                Err(IdentifierError::BadUserId(raw.to_owned()))
            };
        }
        if let Some(digits) = raw.strip_prefix(PHONE_PREFIX) {
            let valid =
                (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
            return if valid {
                Ok(Self::PhoneNumber(digits.to_owned()))
            } else {
                Err(IdentifierError::BadPhoneNumber(raw.to_owned()))
            };
        }
        Err(IdentifierError::UnknownKind(raw.to_owned()))
    }
}

impl Serialize for CommunicationIdentifier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CommunicationIdentifier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_forms_round_trip() {
        for raw in [
            "8:acs:alice",
            "8:acs:a-b_c.9",
            "4:+14255550123",
            "8:echo123",
        ] {
            let id: CommunicationIdentifier = raw.parse().unwrap();
            assert_eq!(id.to_string(), raw);
        }
        assert_eq!(
            "8:echo123".parse::<CommunicationIdentifier>().unwrap(),
            CommunicationIdentifier::EchoBot
        );
    }

    #[test]
    fn phone_numbers_read_as_e164() {
        let phone: CommunicationIdentifier = "4:+15550001".parse().unwrap();
        assert_eq!(phone.e164().as_deref(), Some("+15550001"));
        assert_eq!(CommunicationIdentifier::EchoBot.e164(), None);
    }

    #[test]
    fn bad_forms_are_refused_with_their_kind() {
        assert!(matches!(
            "8:acs:".parse::<CommunicationIdentifier>(),
            Err(IdentifierError::BadUserId(_))
        ));
        assert!(matches!(
            "8:acs:al ice".parse::<CommunicationIdentifier>(),
            Err(IdentifierError::BadUserId(_))
        ));
        assert!(matches!(
            "4:+12ab".parse::<CommunicationIdentifier>(),
            Err(IdentifierError::BadPhoneNumber(_))
        ));
        assert!(matches!(
            "alice".parse::<CommunicationIdentifier>(),
            Err(IdentifierError::UnknownKind(_))
        ));
    }

    #[test]
    fn serde_uses_the_raw_string() {
        let id = CommunicationIdentifier::user("bob").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"8:acs:bob\"");
        assert!(serde_json::from_str::<CommunicationIdentifier>("\"bob\"").is_err());
    }
}
