//! GitHub App authentication: RS256 App JWTs (verified with the App's public
//! key) and installation tokens; plus helpers that mint App JWTs for tests.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use super::error::ApiError;
use super::sha1;

/// Clock skew GitHub tolerates on `iat`/`exp`.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// Longest App JWT lifetime GitHub accepts.
pub const MAX_JWT_LIFETIME_SECS: i64 = 600;

fn jwt_error(message: &str) -> ApiError {
    ApiError::new(401, message)
}

/// Check an App JWT (the part after `Bearer `): RS256 signature by `key`,
/// `iss` = `app_id` (number or string), `iat`/`exp` numeric, lifetime at most
/// 10 minutes, not expired and not issued in the future (60 s skew).
pub(crate) fn verify_app_jwt(
    token: &str,
    key: &DecodingKey,
    app_id: u64,
    now: i64,
) -> Result<(), ApiError> {
    let undecodable = "A JSON web token could not be decoded";
    let header = jsonwebtoken::decode_header(token).map_err(|_| jwt_error(undecodable))?;
    if header.alg != Algorithm::RS256 {
        return Err(jwt_error(undecodable));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = CLOCK_SKEW_SECS as u64;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => jwt_error(
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            ),
            _ => jwt_error(undecodable),
        }
    })?;
    let claims = data.claims;
    let iss_ok = match claims.get("iss") {
        Some(Value::Number(n)) => n.as_u64() == Some(app_id),
        Some(Value::String(s)) => s.trim() == app_id.to_string(),
        _ => false,
    };
    if !iss_ok {
        return Err(jwt_error(
            "'Issuer' claim ('iss') must be an Integer or String representing the GitHub App ID",
        ));
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| {
        jwt_error("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued")
    })?;
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| {
        jwt_error("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires")
    })?;
    if iat > now + CLOCK_SKEW_SECS {
        return Err(jwt_error(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past",
        ));
    }
    if exp - iat > MAX_JWT_LIFETIME_SECS {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    if exp + CLOCK_SKEW_SECS < now {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ));
    }
    Ok(())
}

/// A fresh installation token: `ghs_` and 36 alphanumerics derived from `seed`.
pub(crate) fn new_token(seed: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::from("ghs_");
    let mut block = sha1::digest(seed.as_bytes()).to_vec();
    block.extend_from_slice(&sha1::digest(format!("{seed}/2").as_bytes()));
    for b in block.iter().take(36) {
        out.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
    }
    out
}

/// Sign an App JWT: RS256 with `private_key_pem` (PKCS#1 or PKCS#8), `iss` =
/// `app_id` as a number, the given `iat` and `exp` (seconds since the epoch).
pub fn app_jwt_with(
    app_id: u64,
    private_key_pem: &str,
    iat: i64,
    exp: i64,
) -> anyhow::Result<String> {
    let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not an RSA private key in PEM: {e}"))?;
    let claims = json!({"iat": iat, "exp": exp, "iss": app_id});
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| anyhow::anyhow!("cannot sign the App JWT: {e}"))
}

/// Sign an App JWT the way GitHub recommends: issued 60 s ago, expiring in 9 minutes.
pub fn app_jwt(app_id: u64, private_key_pem: &str) -> anyhow::Result<String> {
    let now = jiff::Timestamp::now().as_second();
    app_jwt_with(app_id, private_key_pem, now - 60, now + 540)
}

#[cfg(test)]
mod tests {
    use super::super::{TEST_APP_ID, TEST_APP_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM, WRONG_APP_KEY_PEM};
    use super::*;

    #[test]
    fn jwt_rules() {
        let key = DecodingKey::from_rsa_pem(TEST_APP_PUBLIC_KEY_PEM.as_bytes()).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let check = |jwt: &str| verify_app_jwt(jwt, &key, TEST_APP_ID, now).map_err(|e| e.message);
        let good = app_jwt(TEST_APP_ID, TEST_APP_KEY_PEM).unwrap();
        assert_eq!(check(&good), Ok(()));
        let wrong_key = app_jwt(TEST_APP_ID, WRONG_APP_KEY_PEM).unwrap();
        assert!(check(&wrong_key).is_err());
        let other_app = app_jwt(TEST_APP_ID + 1, TEST_APP_KEY_PEM).unwrap();
        assert!(check(&other_app).unwrap_err().contains("Issuer"));
        let expired = app_jwt_with(TEST_APP_ID, TEST_APP_KEY_PEM, now - 700, now - 200).unwrap();
        assert!(check(&expired).is_err());
        let too_long = app_jwt_with(TEST_APP_ID, TEST_APP_KEY_PEM, now - 10, now + 900).unwrap();
        assert!(check(&too_long).unwrap_err().contains("too far"));
        let future = app_jwt_with(TEST_APP_ID, TEST_APP_KEY_PEM, now + 300, now + 600).unwrap();
        assert!(check(&future).is_err());
        // a string iss is accepted, 30 s of skew too
        let key_enc = EncodingKey::from_rsa_pem(TEST_APP_KEY_PEM.as_bytes()).unwrap();
        let claims = json!({"iat": now + 30, "exp": now + 500, "iss": TEST_APP_ID.to_string()});
        let s = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key_enc).unwrap();
        assert_eq!(check(&s), Ok(()));
        assert!(check("not.a.jwt").is_err());
        let t = new_token("x");
        assert!(t.starts_with("ghs_") && t.len() == 40, "{t}");
        assert_ne!(t, new_token("y"));
    }
}
