//! Public keys for JWT verification, from PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`) or from a JWKS document given inline, reduced to the bytes `ring` verifies with.
//!
//! Only the few DER shapes a public key comes in are read (SubjectPublicKeyInfo and PKCS#1 `RSAPublicKey`), with a reader that refuses
//! anything it does not expect, so a malformed key is an error at configuration time, never a panic or a key that verifies nothing.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// A verifying key, by family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// RSA, as PKCS#1 `RSAPublicKey` DER (what `ring`'s RSA verifiers take).
    Rsa(Vec<u8>),
    /// ECDSA P-256, as an uncompressed point.
    P256(Vec<u8>),
    /// ECDSA P-384, as an uncompressed point.
    P384(Vec<u8>),
    /// Ed25519, the 32 raw bytes.
    Ed25519(Vec<u8>),
}

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;

/// Reads one entry of `JWTValidationPubKeys`: a PEM public key, or (roster's extension for keys without a URL to fetch) a JWKS document
/// `{"keys":[...]}` or one JWK, which may give several keys.
pub(crate) fn parse_key_entry(text: &str) -> Result<Vec<PublicKey>, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let doc: Value = serde_json::from_str(trimmed).map_err(|e| format!("invalid JWKS JSON: {e}"))?;
        return match doc.get("keys") {
            Some(Value::Array(keys)) => keys.iter().map(parse_jwk).collect(),
            Some(_) => Err("invalid JWKS: \"keys\" is not a list".into()),
            None => Ok(vec![parse_jwk(&doc)?]),
        };
    }
    parse_pem(trimmed).map(|key| vec![key])
}

fn parse_pem(text: &str) -> Result<PublicKey, String> {
    let begin = text.strip_prefix("-----BEGIN ").ok_or("error parsing public key: not a PEM block")?;
    let (label, rest) = begin.split_once("-----").ok_or("error parsing public key: malformed PEM header")?;
    let end_marker = format!("-----END {label}-----");
    let body = rest.split(&end_marker).next().filter(|_| rest.contains(&end_marker));
    let body = body.ok_or("error parsing public key: PEM block has no END line")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(b64).map_err(|e| format!("error parsing public key: bad base64 in PEM: {e}"))?;
    match label {
        "PUBLIC KEY" => parse_spki(&der),
        "RSA PUBLIC KEY" => {
            check_rsa_pkcs1(&der)?;
            Ok(PublicKey::Rsa(der))
        }
        other => Err(format!(
            "error parsing public key: unsupported PEM block {other:?} (want PUBLIC KEY or RSA PUBLIC KEY)"
        )),
    }
}

/// SubjectPublicKeyInfo: `SEQUENCE { SEQUENCE { OID, params }, BIT STRING }`.
fn parse_spki(der: &[u8]) -> Result<PublicKey, String> {
    let bad = |why: &str| format!("error parsing public key: {why}");
    let (spki, rest) = read(der, TAG_SEQUENCE).map_err(|e| bad(&e))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the key"));
    }
    let (algorithm, after_alg) = read(spki, TAG_SEQUENCE).map_err(|e| bad(&e))?;
    let (bits, after_bits) = read(after_alg, TAG_BIT_STRING).map_err(|e| bad(&e))?;
    if !after_bits.is_empty() {
        return Err(bad("trailing bytes in SubjectPublicKeyInfo"));
    }
    let key = match bits.split_first() {
        Some((0, key)) => key.to_vec(),
        _ => return Err(bad("public key bit string has unused bits")),
    };
    let (oid, params) = read(algorithm, TAG_OID).map_err(|e| bad(&e))?;
    match oid {
        OID_RSA => {
            check_rsa_pkcs1(&key)?;
            Ok(PublicKey::Rsa(key))
        }
        OID_ED25519 if key.len() == 32 => Ok(PublicKey::Ed25519(key)),
        OID_EC => {
            let (curve, _) = read(params, TAG_OID).map_err(|e| bad(&e))?;
            match curve {
                OID_P256 if key.len() == 65 && key[0] == 4 => Ok(PublicKey::P256(key)),
                OID_P384 if key.len() == 97 && key[0] == 4 => Ok(PublicKey::P384(key)),
                OID_P256 | OID_P384 => Err(bad("EC point is not an uncompressed point of its curve")),
                _ => Err(bad("unsupported elliptic curve (want P-256 or P-384)")),
            }
        }
        _ => Err(bad("unsupported key algorithm (want RSA, EC P-256/P-384 or Ed25519)")),
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn check_rsa_pkcs1(der: &[u8]) -> Result<(), String> {
    let bad = |why: String| format!("error parsing public key: RSA key: {why}");
    let (seq, rest) = read(der, TAG_SEQUENCE).map_err(bad)?;
    let (_, after_n) = read(seq, TAG_INTEGER).map_err(bad)?;
    let (_, after_e) = read(after_n, TAG_INTEGER).map_err(bad)?;
    if !rest.is_empty() || !after_e.is_empty() {
        return Err(bad("trailing bytes".into()));
    }
    Ok(())
}

/// One JWK: `RSA` (`n`, `e`), `EC` (`crv` P-256/P-384, `x`, `y`) or `OKP` (`crv` Ed25519, `x`).
fn parse_jwk(jwk: &Value) -> Result<PublicKey, String> {
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("invalid JWK: no {name:?}"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("invalid JWK: {name:?} is not base64url: {e}"))
    };
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => Ok(PublicKey::Rsa(rsa_pkcs1(&field("n")?, &field("e")?))),
        Some("EC") => {
            let (x, y) = (field("x")?, field("y")?);
            let width = match crv {
                "P-256" => 32,
                "P-384" => 48,
                other => return Err(format!("invalid JWK: unsupported curve {other:?} (want P-256 or P-384)")),
            };
            if x.len() != width || y.len() != width {
                return Err(format!("invalid JWK: {crv} coordinates must be {width} bytes"));
            }
            let point = [&[4u8][..], &x, &y].concat();
            Ok(if width == 32 { PublicKey::P256(point) } else { PublicKey::P384(point) })
        }
        Some("OKP") if crv == "Ed25519" => {
            let x = field("x")?;
            if x.len() != 32 {
                return Err("invalid JWK: an Ed25519 key is 32 bytes".into());
            }
            Ok(PublicKey::Ed25519(x))
        }
        Some(other) => Err(format!("invalid JWK: unsupported key type {other:?} (crv {crv:?})")),
        None => Err("invalid JWK: no \"kty\"".into()),
    }
}

/// The PKCS#1 DER of an RSA key given by its modulus and exponent (big-endian, unsigned).
fn rsa_pkcs1(n: &[u8], e: &[u8]) -> Vec<u8> {
    let body = [der_unsigned_integer(n), der_unsigned_integer(e)].concat();
    der_tlv(TAG_SEQUENCE, &body)
}

fn der_unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let stripped = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => &[0u8][..],
    };
    // A set top bit would read as negative: DER puts a zero byte in front.
    let body = if stripped[0] & 0x80 != 0 { [&[0u8][..], stripped].concat() } else { stripped.to_vec() };
    der_tlv(TAG_INTEGER, &body)
}

fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len_bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | len_bytes.len() as u8);
        out.extend(len_bytes);
    }
    out.extend_from_slice(body);
    out
}

/// Reads one DER element with tag `tag`; returns its contents and what follows it.
fn read(der: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (&found, rest) = der.split_first().ok_or("truncated DER")?;
    if found != tag {
        return Err(format!("unexpected DER tag 0x{found:02x} (want 0x{tag:02x})"));
    }
    let (&first, rest) = rest.split_first().ok_or("truncated DER length")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n_bytes = usize::from(first & 0x7F);
        if n_bytes == 0 || n_bytes > 4 || rest.len() < n_bytes {
            return Err("unsupported DER length".into());
        }
        let len = rest[..n_bytes].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n_bytes..])
    };
    if rest.len() < len {
        return Err("truncated DER element".into());
    }
    Ok(rest.split_at(len))
}
