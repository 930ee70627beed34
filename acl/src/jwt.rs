//! The `jwt` auth method: its configuration (Consul's JSON keys) and the verification of a bearer token against it, pure.
//!
//! Verification is what Consul's jwt method does with statically configured keys: the signature must verify with one of
//! `JWTValidationPubKeys` under an algorithm of `JWTSupportedAlgs` (default `RS256`; `none` never), then `exp`, `nbf` and `iat`
//! are checked against the caller's clock with Consul's leeways, `iss` against `BoundIssuer` and `aud` against `BoundAudiences`.
//! The claims the method maps (`ClaimMappings`, `ListClaimMappings`) become the `Identity` binding rules select on.
//!
//! Keys fetched from a URL (`JWKSURL`, `OIDCDiscoveryURL`) are refused by name: this module does no I/O, and keys come inline.
//! An entry of `JWTValidationPubKeys` may be a PEM public key, or a JWKS document (`{"keys":[...]}`) for keys published as JWKs.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::{Map, Value};

mod keys;
#[cfg(test)]
mod tests;

use keys::PublicKey;

/// The configuration of a `jwt` auth method, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    keys: Vec<PublicKey>,
    bound_issuer: String,
    bound_audiences: Vec<String>,
    /// Claim (name or JSON pointer) → attribute, for `value.<attribute>`.
    claim_mappings: BTreeMap<String, String>,
    /// Claim → attribute, for `list.<attribute>`.
    list_claim_mappings: BTreeMap<String, String>,
    algs: Vec<Alg>,
    expiration_leeway: Duration,
    not_before_leeway: Duration,
    clock_skew_leeway: Duration,
}

/// What a verified token says about its bearer, as binding rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `value.<name>`: every `ClaimMappings` attribute, empty when the token lacks the claim (as Consul projects it).
    pub value: BTreeMap<String, String>,
    /// `list.<name>`: every `ListClaimMappings` attribute the token has.
    pub list: BTreeMap<String, Vec<String>>,
}

/// The signature algorithms verified here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

const ALGS: [(&str, Alg); 9] = [
    ("RS256", Alg::Rs256),
    ("RS384", Alg::Rs384),
    ("RS512", Alg::Rs512),
    ("PS256", Alg::Ps256),
    ("PS384", Alg::Ps384),
    ("PS512", Alg::Ps512),
    ("ES256", Alg::Es256),
    ("ES384", Alg::Es384),
    ("EdDSA", Alg::EdDsa),
];

/// Every key a `jwt` method's `Config` may hold; the URL-based ones are known, and refused with a reason.
const KNOWN_KEYS: [&str; 9] = [
    "JWTValidationPubKeys",
    "BoundIssuer",
    "BoundAudiences",
    "ClaimMappings",
    "ListClaimMappings",
    "JWTSupportedAlgs",
    "ExpirationLeeway",
    "NotBeforeLeeway",
    "ClockSkewLeeway",
];
const URL_KEYS: [&str; 4] = ["JWKSURL", "JWKSCACert", "OIDCDiscoveryURL", "OIDCDiscoveryCACert"];

/// Consul's leeways when the config leaves them at zero: 150 s for `exp` and `nbf`, 60 s of clock skew.
const DEFAULT_CLAIM_LEEWAY: Duration = Duration::from_secs(150);
const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

impl JwtConfig {
    /// Reads a `jwt` method's `Config` object; `parse_duration` reads a Go duration string (a leeway may also be integer
    /// nanoseconds, and a negative one means none, as in Consul). Every problem is reported, each naming its key.
    pub fn from_json(
        config: &Value,
        parse_duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<JwtConfig, String> {
        let empty = Map::new();
        let object = match config {
            Value::Object(object) => object,
            Value::Null => &empty,
            _ => return Err("Config must be a JSON object".into()),
        };
        let mut problems = Vec::new();
        for key in object.keys() {
            if URL_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "Config.{key} is not supported by roster: keys are not fetched, give them in JWTValidationPubKeys"
                ));
            } else if !KNOWN_KEYS.contains(&key.as_str()) {
                problems.push(format!("Config.{key} is not a jwt auth method setting"));
            }
        }
        let mut cfg = JwtConfig {
            keys: Vec::new(),
            bound_issuer: String::new(),
            bound_audiences: Vec::new(),
            claim_mappings: BTreeMap::new(),
            list_claim_mappings: BTreeMap::new(),
            algs: vec![Alg::Rs256],
            expiration_leeway: DEFAULT_CLAIM_LEEWAY,
            not_before_leeway: DEFAULT_CLAIM_LEEWAY,
            clock_skew_leeway: DEFAULT_CLOCK_SKEW,
        };
        cfg.read_keys(object, &mut problems);
        match object.get("BoundIssuer") {
            None | Some(Value::Null) => {}
            Some(Value::String(issuer)) => cfg.bound_issuer = issuer.clone(),
            Some(_) => problems.push("Config.BoundIssuer must be a string".into()),
        }
        let mut keep = |res: Result<(), String>| res.err().into_iter().for_each(|why| problems.push(why));
        keep(strings(object, "BoundAudiences").map(|a| cfg.bound_audiences = a));
        keep(mappings(object, "ClaimMappings").map(|m| cfg.claim_mappings = m));
        keep(mappings(object, "ListClaimMappings").map(|m| cfg.list_claim_mappings = m));
        keep(algorithms(object).map(|algs| {
            if !algs.is_empty() {
                cfg.algs = algs;
            }
        }));
        for (key, slot, default) in [
            ("ExpirationLeeway", &mut cfg.expiration_leeway, DEFAULT_CLAIM_LEEWAY),
            ("NotBeforeLeeway", &mut cfg.not_before_leeway, DEFAULT_CLAIM_LEEWAY),
            ("ClockSkewLeeway", &mut cfg.clock_skew_leeway, DEFAULT_CLOCK_SKEW),
        ] {
            keep(
                leeway(object.get(key), &parse_duration)
                    .map(|value| *slot = value.unwrap_or(default))
                    .map_err(|why| format!("Config.{key}: {why}")),
            );
        }
        for attribute in cfg.claim_mappings.values().chain(cfg.list_claim_mappings.values()) {
            if attribute.is_empty() || !attribute.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                keep(Err(format!("Config: claim mapping target {attribute:?} must be letters, digits, '_' or '-'")));
            }
        }
        if problems.is_empty() { Ok(cfg) } else { Err(problems.join("; ")) }
    }

    fn read_keys(&mut self, object: &Map<String, Value>, problems: &mut Vec<String>) {
        if object.keys().any(|k| URL_KEYS.contains(&k.as_str())) {
            return;
        }
        match strings(object, "JWTValidationPubKeys") {
            Ok(entries) => {
                for (i, text) in entries.iter().enumerate() {
                    match keys::parse_key_entry(text) {
                        Ok(mut found) => self.keys.append(&mut found),
                        Err(why) => problems.push(format!("Config.JWTValidationPubKeys[{i}]: {why}")),
                    }
                }
                if entries.is_empty() {
                    problems.push("Config.JWTValidationPubKeys must hold at least one key".into());
                }
            }
            Err(why) => problems.push(why),
        }
    }

    /// The attribute names of `ClaimMappings`, which bind names may interpolate as `${value.<name>}`.
    pub fn value_names(&self) -> impl Iterator<Item = &str> {
        self.claim_mappings.values().map(String::as_str)
    }

    /// The attribute names of `ListClaimMappings`, which selectors may address as `list.<name>`.
    pub fn list_names(&self) -> impl Iterator<Item = &str> {
        self.list_claim_mappings.values().map(String::as_str)
    }

    /// Verifies `token` at `now_unix_secs` and projects its claims. The error says why the token was refused.
    pub fn verify(&self, token: &str, now_unix_secs: i64) -> Result<Identity, String> {
        let claims = self.verified_claims(token)?;
        self.check_times(&claims, now_unix_secs)?;
        if !self.bound_issuer.is_empty() && claims.get("iss").and_then(Value::as_str) != Some(&self.bound_issuer) {
            return Err("invalid issuer (iss) claim".into());
        }
        if !self.bound_audiences.is_empty() {
            let audiences: Vec<&str> = match claims.get("aud") {
                Some(Value::String(one)) => vec![one],
                Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !audiences.iter().any(|a| self.bound_audiences.iter().any(|b| b == a)) {
                return Err("invalid audience (aud) claim: audience claim does not match any expected audience".into());
            }
        }
        self.project(&claims)
    }

    /// The payload of `token` once its signature verified with a configured key under an allowed algorithm.
    fn verified_claims(&self, token: &str) -> Result<Map<String, Value>, String> {
        let mut parts = token.trim().split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed JWT: want three dot-separated parts".into());
        };
        let header: Value = decode_json(header_b64).map_err(|e| format!("malformed JWT header: {e}"))?;
        let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or_default();
        let alg = ALGS
            .iter()
            .find(|(name, _)| *name == alg_name)
            .map(|(_, alg)| *alg)
            .filter(|alg| self.algs.contains(alg))
            .ok_or_else(|| format!("unsupported or disallowed signing algorithm {alg_name:?}"))?;
        let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| "malformed JWT signature".to_owned())?;
        let signed = &token.trim().as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        let verified = self.keys.iter().any(|key| verify_with(alg, key, signed, &signature));
        if !verified {
            return Err("failed to verify signature: no configured key verifies this token".into());
        }
        match decode_json(payload_b64).map_err(|e| format!("malformed JWT payload: {e}"))? {
            Value::Object(claims) => Ok(claims),
            _ => Err("malformed JWT payload: not a JSON object".into()),
        }
    }

    fn check_times(&self, claims: &Map<String, Value>, now: i64) -> Result<(), String> {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let skew = secs(self.clock_skew_leeway);
        let time = |name: &str| -> Result<Option<i64>, String> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                // NumericDate may carry a fraction; whole seconds are what the leeways are counted in.
                Some(Value::Number(n)) => Ok(n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))),
                Some(_) => Err(format!("malformed JWT: {name} is not a number")),
            }
        };
        if let Some(exp) = time("exp")?
            && now > exp.saturating_add(skew).saturating_add(secs(self.expiration_leeway))
        {
            return Err("token is expired (exp)".into());
        }
        if let Some(nbf) = time("nbf")?
            && now.saturating_add(skew).saturating_add(secs(self.not_before_leeway)) < nbf
        {
            return Err("token is not valid yet (nbf)".into());
        }
        if let Some(iat) = time("iat")?
            && now.saturating_add(skew) < iat
        {
            return Err("token issued in the future (iat)".into());
        }
        Ok(())
    }

    fn project(&self, claims: &Map<String, Value>) -> Result<Identity, String> {
        let mut identity = Identity::default();
        for (claim, attribute) in &self.claim_mappings {
            let text = match find_claim(claims, claim) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => return Err(format!("error converting claim {claim:?} to string: not a scalar")),
            };
            identity.value.insert(attribute.clone(), text);
        }
        for (claim, attribute) in &self.list_claim_mappings {
            let items = match find_claim(claims, claim) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        Value::Bool(_) | Value::Number(_) => Ok(item.to_string()),
                        _ => Err(format!("{claim:?} list claim could not be converted to string list")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(format!("{claim:?} list claim could not be converted to string list")),
            };
            identity.list.insert(attribute.clone(), items);
        }
        Ok(identity)
    }
}

impl Identity {
    /// The document a binding rule's selector is evaluated on (`roster_filter::schema::BINDING_IDENTITY`).
    pub fn selectable(&self) -> Value {
        serde_json::json!({ "value": self.value, "list": self.list })
    }

    /// The variables a bind name may interpolate: `value.<name>` for every value attribute.
    pub fn projected_vars(&self) -> BTreeMap<String, String> {
        self.value.iter().map(|(k, v)| (format!("value.{k}"), v.clone())).collect()
    }
}

/// A claim by name, or by JSON pointer when it starts with `/` (`/realm/role`), as Consul's claim mappings address nested claims.
fn find_claim<'a>(claims: &'a Map<String, Value>, claim: &str) -> Option<&'a Value> {
    if claim.starts_with('/') {
        let root = claims.get(claim.trim_start_matches('/').split('/').next()?)?;
        let rest = claim.trim_start_matches('/').split_once('/').map(|(_, rest)| format!("/{rest}"));
        match rest {
            Some(pointer) => root.pointer(&pointer),
            None => Some(root),
        }
    } else {
        claims.get(claim)
    }
}

fn verify_with(alg: Alg, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    let (algorithm, bytes): (&'static dyn VerificationAlgorithm, &[u8]) = match (alg, key) {
        (Alg::Rs256, PublicKey::Rsa(der)) => (&signature::RSA_PKCS1_2048_8192_SHA256, der),
        (Alg::Rs384, PublicKey::Rsa(der)) => (&signature::RSA_PKCS1_2048_8192_SHA384, der),
        (Alg::Rs512, PublicKey::Rsa(der)) => (&signature::RSA_PKCS1_2048_8192_SHA512, der),
        (Alg::Ps256, PublicKey::Rsa(der)) => (&signature::RSA_PSS_2048_8192_SHA256, der),
        (Alg::Ps384, PublicKey::Rsa(der)) => (&signature::RSA_PSS_2048_8192_SHA384, der),
        (Alg::Ps512, PublicKey::Rsa(der)) => (&signature::RSA_PSS_2048_8192_SHA512, der),
        (Alg::Es256, PublicKey::P256(point)) => (&signature::ECDSA_P256_SHA256_FIXED, point),
        (Alg::Es384, PublicKey::P384(point)) => (&signature::ECDSA_P384_SHA384_FIXED, point),
        (Alg::EdDsa, PublicKey::Ed25519(raw)) => (&signature::ED25519, raw),
        _ => return false,
    };
    UnparsedPublicKey::new(algorithm, bytes).verify(message, signature).is_ok()
}

fn decode_json(part: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| format!("bad base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("bad JSON: {e}"))
}

fn strings(object: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| format!("Config.{key} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("Config.{key} must be a list of strings")),
    }
}

fn algorithms(object: &Map<String, Value>) -> Result<Vec<Alg>, String> {
    strings(object, "JWTSupportedAlgs")?
        .iter()
        .map(|name| match ALGS.iter().find(|(n, _)| n == name) {
            Some((_, alg)) => Ok(*alg),
            None => Err(format!("Config.JWTSupportedAlgs: unsupported algorithm {name:?}")),
        })
        .collect()
}

fn mappings(object: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(claim, attr)| match attr {
                Value::String(attr) => Ok((claim.clone(), attr.clone())),
                _ => Err(format!("Config.{key}.{claim} must be a string")),
            })
            .collect(),
        Some(_) => Err(format!("Config.{key} must be an object of claim to attribute name")),
    }
}

/// A leeway: `None` for zero (the default applies), `Some(ZERO)` for a negative one (no leeway), else the duration.
fn leeway(
    value: Option<&Value>,
    parse_duration: impl Fn(&str) -> Result<Duration, String>,
) -> Result<Option<Duration>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => Ok(None),
            Some(nanos) if nanos < 0 => Ok(Some(Duration::ZERO)),
            Some(nanos) => Ok(Some(Duration::from_nanos(nanos.unsigned_abs()))),
            None => Err("must be a duration".into()),
        },
        Some(Value::String(text)) if text.starts_with('-') => parse_duration(&text[1..]).map(|_| Some(Duration::ZERO)),
        Some(Value::String(text)) => parse_duration(text).map(|d| (!d.is_zero()).then_some(d)),
        Some(_) => Err("must be a duration".into()),
    }
}
