//! Access tokens: HS256 JWTs that carry a user id, the `voip` scope, a call role and an expiry.
//!
//! The service signs them with its secret ([`TokenIssuer::issue`]) and checks them when a client
//! signs in ([`TokenIssuer::verify`]). Built on `jsonwebtoken` with its aws-lc-rs backend, the
//! same crypto library str0m already links.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use call_protocol::{CommunicationIdentifier, ErrorCode, Role};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The scope a token needs to place and receive calls.
pub const VOIP_SCOPE: &str = "voip";

/// How long a token lives unless the issuer is told otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The claims inside an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's raw identifier, e.g. `8:acs:alice`.
    pub sub: String,
    /// Space-separated scopes; calling needs `voip`.
    pub scope: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, in seconds since the Unix epoch.
    pub iat: u64,
    /// What the user may do in calls; absent means [`Role::Presenter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// What a valid token grants: who signs in, with which role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The user it signs in.
    pub user: CommunicationIdentifier,
    /// What they may do in calls.
    pub role: Role,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is past its expiry.
    #[error("the access token has expired")]
    Expired,
    /// The signature does not match this service's secret.
    #[error("the access token was not signed by this service")]
    BadSignature,
    /// The token is not a well-formed JWT, or its claims are not ours.
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// The token lacks the `voip` scope.
    #[error("the access token lacks the `voip` scope")]
    MissingScope,
    /// The subject is not a communication user identifier.
    #[error("the access token's user is invalid: {0}")]
    BadUser(String),
}

impl TokenError {
    /// The signaling error code a client sees for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::InvalidToken,
        }
    }
}

/// An access token with what it grants, as the dev endpoint and CLI hand it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The signed JWT.
    pub token: String,
    /// The user it signs in.
    pub user: CommunicationIdentifier,
    /// Expiry, in seconds since the Unix epoch.
    pub expires_on: u64,
    /// What they may do in calls.
    #[serde(default)]
    pub role: Role,
}

/// Signs and checks access tokens with one HMAC secret.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenIssuer { .. }")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenIssuer {
    /// An issuer for this secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// An issuer with a fresh random 32-byte secret, for an embedded service.
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// Signs a `voip` token for `user`, a [`Role::Presenter`], that expires after `ttl`.
    pub fn issue(&self, user: &CommunicationIdentifier, ttl: Duration) -> IssuedToken {
        self.issue_with_role(user, Role::Presenter, ttl)
    }

    /// Signs a `voip` token for `user` with a call role, that expires after `ttl`.
    pub fn issue_with_role(
        &self,
        user: &CommunicationIdentifier,
        role: Role,
        ttl: Duration,
    ) -> IssuedToken {
        let iat = now_secs();
        self.issue_at(user, role, iat, iat + ttl.as_secs())
    }

    /// Signs a `voip` token with explicit issue and expiry times (seconds since the epoch).
    pub fn issue_at(
        &self,
        user: &CommunicationIdentifier,
        role: Role,
        iat: u64,
        exp: u64,
    ) -> IssuedToken {
        let claims = Claims {
            sub: user.raw_id(),
            scope: VOIP_SCOPE.to_owned(),
            exp,
            iat,
            role: Some(role),
        };
        // HS256 signing with an HMAC key and plain claims cannot fail.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail");
        IssuedToken {
            token,
            user: user.clone(),
            expires_on: exp,
            role,
        }
    }

    /// Checks a token and returns what it grants.
    pub fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            },
        )?;
        if !data.claims.scope.split(' ').any(|s| s == VOIP_SCOPE) {
            return Err(TokenError::MissingScope);
        }
        let role = data.claims.role.unwrap_or_default();
        match data.claims.sub.parse() {
            Ok(user @ CommunicationIdentifier::CommunicationUser(_)) => Ok(Grant { user, role }),
            Ok(other) => Err(TokenError::BadUser(other.raw_id())),
            Err(e) => Err(TokenError::BadUser(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> CommunicationIdentifier {
        CommunicationIdentifier::user("alice").unwrap()
    }

    #[test]
    fn issued_token_verifies_to_its_user() {
        let issuer = TokenIssuer::random();
        let issued = issuer.issue(&alice(), DEFAULT_TOKEN_TTL);
        let grant = issuer.verify(&issued.token).unwrap();
        assert_eq!(grant.user, alice());
        assert_eq!(grant.role, Role::Presenter);
        assert!(issued.expires_on > now_secs());
        let organizer = issuer.issue_with_role(&alice(), Role::Organizer, DEFAULT_TOKEN_TTL);
        assert_eq!(
            issuer.verify(&organizer.token).map(|g| g.role),
            Ok(Role::Organizer)
        );
    }

    #[test]
    fn forged_token_is_refused() {
        let ours = TokenIssuer::new(b"ours");
        let theirs = TokenIssuer::new(b"theirs");
        let forged = theirs.issue(&alice(), DEFAULT_TOKEN_TTL);
        assert_eq!(ours.verify(&forged.token), Err(TokenError::BadSignature));
        assert_eq!(TokenError::BadSignature.code(), ErrorCode::InvalidToken);
    }

    #[test]
    fn expired_token_is_refused() {
        let issuer = TokenIssuer::random();
        let now = now_secs();
        let old = issuer.issue_at(&alice(), Role::Presenter, now - 100, now - 1);
        assert_eq!(issuer.verify(&old.token), Err(TokenError::Expired));
        assert_eq!(TokenError::Expired.code(), ErrorCode::TokenExpired);
    }

    #[test]
    fn garbage_and_wrong_scope_are_refused() {
        let issuer = TokenIssuer::random();
        assert!(matches!(
            issuer.verify("not-a-jwt"),
            Err(TokenError::Malformed(_))
        ));
        let claims = Claims {
            sub: "8:acs:alice".into(),
            scope: "chat".into(),
            exp: now_secs() + 60,
            iat: now_secs(),
            role: None,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &issuer.encoding).unwrap();
        assert_eq!(issuer.verify(&token), Err(TokenError::MissingScope));
    }

    #[test]
    fn phone_numbers_cannot_sign_in() {
        let issuer = TokenIssuer::random();
        let phone: CommunicationIdentifier = "4:+14255550123".parse().unwrap();
        let issued = issuer.issue(&phone, DEFAULT_TOKEN_TTL);
        assert!(matches!(
            issuer.verify(&issued.token),
            Err(TokenError::BadUser(_))
        ));
    }
}
