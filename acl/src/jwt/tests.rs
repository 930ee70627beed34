//! Tests of JWT verification: tokens signed in the test with every supported key family, and the ways a token must be refused
//! (wrong key, tampered payload, expired, not yet valid, wrong issuer or audience, `alg: none`, an algorithm not allowed).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use super::JwtConfig;

const NOW: i64 = 1_800_000_000;
const RSA_PRIVATE: &str = include_str!("testdata/rsa-test-only.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa-test-only.pub.pem");

/// A signing key and the PEM of its public half.
enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, &'static str),
    Ed(Ed25519KeyPair),
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("test PEM")
}

/// A PEM `PUBLIC KEY` block around SubjectPublicKeyInfo DER, as an operator would paste it.
pub(crate) fn spki_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

fn rsa() -> (Signer, String) {
    let pair = RsaKeyPair::from_pkcs8(&pem_der(RSA_PRIVATE)).expect("test RSA key");
    (Signer::Rsa(pair), RSA_PUBLIC.to_owned())
}

fn ec(alg: &'static rcgen::SignatureAlgorithm, name: &'static str) -> (Signer, String) {
    let key = rcgen::KeyPair::generate_for(alg).expect("EC key");
    let signing = if name == "ES256" {
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING
    } else {
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING
    };
    let pair = EcdsaKeyPair::from_pkcs8(signing, &key.serialize_der(), &SystemRandom::new()).expect("EC pkcs8");
    (Signer::Ec(pair, name), spki_pem(&rcgen::PublicKeyData::subject_public_key_info(&key)))
}

fn ed() -> (Signer, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.serialize_der()).expect("Ed25519 pkcs8");
    (Signer::Ed(pair), spki_pem(&rcgen::PublicKeyData::subject_public_key_info(&key)))
}

fn sign_as(signer: &Signer, alg: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let rng = SystemRandom::new();
    let sig = match signer {
        Signer::Rsa(pair) => {
            let padding: &dyn signature::RsaEncoding = match alg {
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                _ => &signature::RSA_PKCS1_SHA256,
            };
            let mut out = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &rng, signed.as_bytes(), &mut out).expect("RSA sign");
            out
        }
        Signer::Ec(pair, _) => pair.sign(&rng, signed.as_bytes()).expect("EC sign").as_ref().to_vec(),
        Signer::Ed(pair) => pair.sign(signed.as_bytes()).as_ref().to_vec(),
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn default_alg(signer: &Signer) -> &'static str {
    match signer {
        Signer::Rsa(_) => "RS256",
        Signer::Ec(_, name) => name,
        Signer::Ed(_) => "EdDSA",
    }
}

fn sign(signer: &Signer, claims: &Value) -> String {
    sign_as(signer, default_alg(signer), claims)
}

fn config(extra: Value) -> Result<JwtConfig, String> {
    JwtConfig::from_json(&extra, |text| match text.strip_suffix('s').and_then(|n| n.parse().ok()) {
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(format!("bad duration {text:?}")),
    })
}

fn method(public_pem: &str, algs: &[&str]) -> JwtConfig {
    config(json!({
        "JWTValidationPubKeys": [public_pem],
        "JWTSupportedAlgs": algs,
        "BoundIssuer": "https://issuer.example",
        "BoundAudiences": ["roster"],
        "ClaimMappings": {"role": "role", "/svc/name": "service"},
        "ListClaimMappings": {"groups": "groups"},
    }))
    .expect("valid config")
}

fn good_claims() -> Value {
    json!({
        "iss": "https://issuer.example", "aud": ["other", "roster"], "sub": "web-1",
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600,
        "role": "web", "svc": {"name": "api"}, "groups": ["a", "b"],
    })
}

#[test]
fn every_key_family_verifies_and_projects_claims() {
    let cases = [
        (rsa(), "RS256"),
        (rsa(), "RS384"),
        (rsa(), "RS512"),
        (rsa(), "PS256"),
        (ec(&rcgen::PKCS_ECDSA_P256_SHA256, "ES256"), "ES256"),
        (ec(&rcgen::PKCS_ECDSA_P384_SHA384, "ES384"), "ES384"),
        (ed(), "EdDSA"),
    ];
    for ((signer, public), alg) in cases {
        let identity = method(&public, &[alg]).verify(&sign_as(&signer, alg, &good_claims()), NOW).expect(alg);
        assert_eq!(identity.value.get("role").map(String::as_str), Some("web"), "{alg}");
        assert_eq!(identity.value.get("service").map(String::as_str), Some("api"), "{alg}");
        assert_eq!(identity.list.get("groups"), Some(&vec!["a".to_owned(), "b".to_owned()]), "{alg}");
        assert_eq!(identity.projected_vars().get("value.role").map(String::as_str), Some("web"));
    }
}

#[test]
fn refusals_say_why() {
    let (signer, public) = ec(&rcgen::PKCS_ECDSA_P256_SHA256, "ES256");
    let (other, _) = ec(&rcgen::PKCS_ECDSA_P256_SHA256, "ES256");
    let cfg = method(&public, &["ES256"]);
    let with = |patch: Value| {
        let mut claims = good_claims();
        for (k, v) in patch.as_object().expect("patch") {
            claims[k] = v.clone();
        }
        claims
    };
    let good = sign(&signer, &good_claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(with(json!({"role": "admin"})).to_string());
    parts[1] = &forged_payload;
    let tampered = parts.join(".");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    let cases: Vec<(String, &str)> = vec![
        (sign(&other, &good_claims()), "failed to verify signature"),
        (tampered, "failed to verify signature"),
        (unsigned, "disallowed signing algorithm \"none\""),
        (sign_as(&rsa().0, "RS256", &good_claims()), "disallowed signing algorithm \"RS256\""),
        // Expired beyond the default leeways (150 s + 60 s of skew), and not yet valid by as much.
        (sign(&signer, &with(json!({"exp": NOW - 211}))), "token is expired"),
        (sign(&signer, &with(json!({"nbf": NOW + 211}))), "not valid yet"),
        (sign(&signer, &with(json!({"iat": NOW + 61}))), "issued in the future"),
        (sign(&signer, &with(json!({"iss": "https://evil.example"}))), "invalid issuer"),
        (sign(&signer, &with(json!({"aud": "someone-else"}))), "invalid audience"),
        (sign(&signer, &with(json!({"aud": null}))), "invalid audience"),
        ("not-a-jwt".to_owned(), "malformed JWT"),
    ];
    for (token, expect) in cases {
        let err = cfg.verify(&token, NOW).expect_err(expect);
        assert!(err.contains(expect), "{err:?} should say {expect:?}");
    }
    // Inside the leeways a token still verifies.
    cfg.verify(&sign(&signer, &with(json!({"exp": NOW - 209}))), NOW).expect("within leeway");
}

#[test]
fn negative_leeways_mean_none() {
    let (signer, public) = ed();
    let cfg = config(json!({
        "JWTValidationPubKeys": [public], "JWTSupportedAlgs": ["EdDSA"],
        "ExpirationLeeway": -1, "ClockSkewLeeway": "-1s",
    }))
    .expect("config");
    let token = sign(&signer, &json!({"exp": NOW - 1}));
    assert!(cfg.verify(&token, NOW).expect_err("expired").contains("expired"));
    cfg.verify(&sign(&signer, &json!({"exp": NOW})), NOW).expect("exp == now is still valid");
}

#[test]
fn inline_jwks_verifies() {
    let (signer, _) = rsa();
    let Signer::Rsa(pair) = &signer else { unreachable!() };
    let components: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwks = json!({"keys": [{"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&components.n), "e": URL_SAFE_NO_PAD.encode(&components.e)}]});
    let cfg = config(json!({"JWTValidationPubKeys": [jwks.to_string()]})).expect("jwks config");
    cfg.verify(&sign(&signer, &json!({"sub": "x"})), NOW).expect("JWK RSA key verifies");
}

#[test]
fn config_refuses_what_it_cannot_honour() {
    let cases = [
        (json!({"JWKSURL": "https://x/keys"}), "Config.JWKSURL is not supported"),
        (json!({"JWTValidationPubKeys": [RSA_PUBLIC], "Bogus": 1}), "Config.Bogus is not a jwt auth method setting"),
        (json!({}), "must hold at least one key"),
        (
            json!({"JWTValidationPubKeys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]}),
            "JWTValidationPubKeys[0]",
        ),
        (
            json!({"JWTValidationPubKeys": [RSA_PUBLIC], "JWTSupportedAlgs": ["HS256"]}),
            "unsupported algorithm \"HS256\"",
        ),
        (json!({"JWTValidationPubKeys": [RSA_PUBLIC], "ClaimMappings": {"a": "b.c"}}), "claim mapping target"),
        (json!({"JWTValidationPubKeys": [RSA_PUBLIC], "ExpirationLeeway": "soon"}), "Config.ExpirationLeeway"),
    ];
    for (input, expect) in cases {
        let err = config(input.clone()).expect_err(expect);
        assert!(err.contains(expect), "{input}: {err:?} should say {expect:?}");
    }
}

proptest! {
    /// Flipping any bit of a signed token never yields a token that verifies with the same claims changed.
    #[test]
    fn any_flipped_bit_is_refused(position in 0usize..10_000, bit in 0u8..8) {
        let (signer, public) = ed();
        let cfg = method(&public, &["EdDSA"]);
        let token = sign(&signer, &good_claims());
        let mut bytes = token.into_bytes();
        let at = position % bytes.len();
        bytes[at] ^= 1 << bit;
        if let Ok(text) = String::from_utf8(bytes) {
            // Base64url has spare bits in its last character, so a flip there can decode to the same bytes: then the claims
            // must be exactly the signed ones.
            if let Ok(identity) = cfg.verify(&text, NOW) {
                prop_assert_eq!(identity.value.get("role").map(String::as_str), Some("web"));
            }
        }
    }
}
