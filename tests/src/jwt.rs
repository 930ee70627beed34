//! [`JwtIssuer`]: an ES256 key a test holds to sign JWTs, with its public half as the PEM an auth method's config takes.
//!
//! It stands in for the CI system or identity provider that issues workloads their JWTs, so the login tests verify what
//! roster does with real signatures, not a mock.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

/// An ES256 signing key and its public half.
pub struct JwtIssuer {
    pair: EcdsaKeyPair,
    /// The public key as a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo), for `JWTValidationPubKeys`.
    pub public_pem: String,
}

impl JwtIssuer {
    /// A fresh random P-256 key.
    pub fn new() -> JwtIssuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key");
        let key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("rcgen reads the PKCS#8 key");
        let b64 = STANDARD.encode(rcgen::PublicKeyData::subject_public_key_info(&key));
        let lines: Vec<String> = b64.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let public_pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"));
        JwtIssuer { pair, public_pem }
    }

    /// A compact JWS of `claims`, signed ES256.
    pub fn sign(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": "JWT"}).to_string());
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.pair.sign(&SystemRandom::new(), signed.as_bytes()).expect("sign");
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

impl Default for JwtIssuer {
    fn default() -> JwtIssuer {
        JwtIssuer::new()
    }
}
