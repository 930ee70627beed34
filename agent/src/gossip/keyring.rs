//! The gossip keyring: the AES-GCM keys that seal every datagram and push/pull frame, primary first, and the file
//! that keeps them (Consul's `serf/local.keyring`).
//!
//! A sealed message is `header | nonce | ciphertext | tag`: the header (magic, format version, datacenter tag or frame
//! length) is authenticated as associated data, the nonce is 12 random bytes per message, so no key ever sees the
//! same nonce twice in practice (2^32 messages per key keeps the collision odds below 2^-32). Messages are sealed
//! with the primary key and opened by trying every installed key, which is what lets a cluster rotate keys without
//! a flag day: install everywhere, switch the primary everywhere, remove the old key everywhere.
//!
//! Key operations apply to memory and to the file together: a change that cannot be persisted is refused, so what
//! an agent answers is what it will still use after a restart.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, KeyInit, Nonce};
use base64::Engine;

/// The nonce length of every sealed message.
const NONCE_LEN: usize = 12;
/// The GCM tag length.
const TAG_LEN: usize = 16;
/// What sealing adds to a message: the nonce and the tag.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Peers whose rejected messages were logged; beyond this many, rejections are only counted.
const MAX_WARNED_PEERS: usize = 1024;

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, U12>;

/// One gossip encryption key: 16, 24 or 32 bytes (AES-128, -192 or -256), written in base64.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64 at all.
    #[error("the key is not valid base64")]
    NotBase64,
    /// Decoded to a length AES does not take.
    #[error("the key is {0} bytes; it must be 16, 24 or 32 bytes (base64-encoded)")]
    BadLength(usize),
}

impl Key {
    /// Reads a base64 key (standard alphabet, padded, as `consul keygen` prints).
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| KeyError::NotBase64)?;
        Key::from_bytes(bytes)
    }

    /// A fresh random 32-byte key.
    pub fn generate() -> Key {
        let mut bytes = vec![0u8; 32];
        rand::fill(bytes.as_mut_slice());
        Key(bytes)
    }

    /// The key in base64, the form config files, the API and the keyring file use.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Key, KeyError> {
        match bytes.len() {
            16 | 24 | 32 => Ok(Key(bytes)),
            len => Err(KeyError::BadLength(len)),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn cipher(&self) -> Cipher {
        // The length was checked when the key was made, so these conversions cannot fail.
        match self.0.len() {
            16 => Aes128Gcm::new_from_slice(&self.0).map(Cipher::Aes128),
            24 => Aes192Gcm::new_from_slice(&self.0).map(Cipher::Aes192),
            _ => Aes256Gcm::new_from_slice(&self.0).map(Cipher::Aes256),
        }
        .unwrap_or(Cipher::Invalid)
    }
}

/// Secrets stay out of logs and panics.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

/// A key's expanded AES schedule, built once per key rather than once per message.
enum Cipher {
    Aes128(Aes128Gcm),
    Aes192(Aes192Gcm),
    Aes256(Aes256Gcm),
    Invalid,
}

impl Cipher {
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
        let nonce = Nonce::<U12>::from_slice(nonce);
        let payload = Payload { msg, aad };
        match self {
            Cipher::Aes128(cipher) => cipher.encrypt(nonce, payload).ok(),
            Cipher::Aes192(cipher) => cipher.encrypt(nonce, payload).ok(),
            Cipher::Aes256(cipher) => cipher.encrypt(nonce, payload).ok(),
            Cipher::Invalid => None,
        }
    }

    fn open(&self, nonce: &[u8], aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
        let nonce = Nonce::<U12>::from_slice(nonce);
        let payload = Payload { msg, aad };
        match self {
            Cipher::Aes128(cipher) => cipher.decrypt(nonce, payload).ok(),
            Cipher::Aes192(cipher) => cipher.decrypt(nonce, payload).ok(),
            Cipher::Aes256(cipher) => cipher.decrypt(nonce, payload).ok(),
            Cipher::Invalid => None,
        }
    }
}

/// The keys an agent holds, primary first, and where they are persisted.
pub struct Keyring {
    keys: Vec<(Key, Cipher)>,
    /// `serf/local.keyring` in the data dir; `None` keeps the keyring in memory (`-dev`, no data dir).
    path: Option<PathBuf>,
}

impl Clone for Keyring {
    fn clone(&self) -> Self {
        Keyring::with_keys(self.keys(), self.path.clone())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("keys", &self.keys.len()).field("path", &self.path).finish()
    }
}

/// A keyring change, as an operator asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOp {
    /// Report the keys.
    List,
    /// Add a key (a no-op when it is installed already).
    Install(Key),
    /// Make an installed key the primary.
    Use(Key),
    /// Remove a key that is not the primary (a no-op when it is not installed).
    Remove(Key),
}

/// Where a data dir keeps the keyring, as Consul does.
pub fn keyring_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serf").join("local.keyring")
}

impl Keyring {
    /// Opens the keyring of a data dir (`None`: in memory): the file when it exists, which wins over `seed`, else a
    /// keyring of `seed` alone, persisted at once. `None` when there is neither: gossip is not encrypted.
    pub fn load_or_seed(data_dir: Option<&Path>, seed: Option<Key>) -> Result<Option<Keyring>, String> {
        let path = data_dir.map(keyring_path);
        if let Some(path) = &path
            && let Some(keys) = read_keyring_file(path)?
        {
            if let Some(seed) = &seed
                && !keys.contains(seed)
            {
                tracing::warn!(
                    path = %path.display(),
                    "gossip: the keyring file exists and does not hold the configured `encrypt` key; using the \
                     keyring file (remove it to start over from `encrypt`)"
                );
            }
            return Ok(Some(Keyring::with_keys(keys, Some(path.clone()))));
        }
        let Some(seed) = seed else { return Ok(None) };
        let keyring = Keyring::with_keys(vec![seed], path);
        keyring.persist().map_err(|error| format!("cannot write the gossip keyring: {error}"))?;
        Ok(Some(keyring))
    }

    /// An in-memory keyring of `keys`, primary first.
    pub fn in_memory(keys: Vec<Key>) -> Keyring {
        Keyring::with_keys(keys, None)
    }

    fn with_keys(keys: Vec<Key>, path: Option<PathBuf>) -> Keyring {
        Keyring {
            keys: keys
                .into_iter()
                .map(|key| {
                    let cipher = key.cipher();
                    (key, cipher)
                })
                .collect(),
            path,
        }
    }

    /// The keys, primary first.
    pub fn keys(&self) -> Vec<Key> {
        self.keys.iter().map(|(key, _)| key.clone()).collect()
    }

    /// Applies `op`; the keys after it, primary first, or why it was refused (memberlist's wording).
    pub(crate) fn apply(&mut self, op: &KeyOp) -> Result<Vec<Key>, String> {
        let before = self.keys();
        let mut keys = before.clone();
        match op {
            KeyOp::List => {}
            KeyOp::Install(key) => {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
            KeyOp::Use(key) => {
                let Some(idx) = keys.iter().position(|held| held == key) else {
                    return Err("Requested key is not in the keyring".to_owned());
                };
                let key = keys.remove(idx);
                keys.insert(0, key);
            }
            KeyOp::Remove(key) => {
                if keys.first() == Some(key) {
                    return Err("Removing the primary key is not allowed".to_owned());
                }
                keys.retain(|held| held != key);
            }
        }
        if keys != before {
            let changed = Keyring::with_keys(keys.clone(), self.path.clone());
            changed.persist().map_err(|error| format!("cannot persist the keyring: {error}"))?;
            *self = changed;
        }
        Ok(keys)
    }

    /// Writes the keyring file atomically with mode 0600 (nothing to do in memory).
    fn persist(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let encoded: Vec<String> = self.keys.iter().map(|(key, _)| key.to_base64()).collect();
        let bytes = serde_json::to_vec(&encoded).map_err(std::io::Error::other)?;
        write_private(path, &bytes)
    }
}

/// Reads a keyring file: `None` when it does not exist; an error when it is unreadable or holds a bad key.
fn read_keyring_file(path: &Path) -> Result<Option<Vec<Key>>, String> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read the gossip keyring {shown}: {error}")),
    };
    let texts: Vec<String> = serde_json::from_slice(&bytes)
        .map_err(|_| format!("the gossip keyring {shown} is not a JSON array of base64 keys"))?;
    if texts.is_empty() {
        return Err(format!("the gossip keyring {shown} holds no key"));
    }
    let keys = texts
        .iter()
        .enumerate()
        .map(|(idx, text)| Key::parse(text).map_err(|error| format!("the gossip keyring {shown}, key {idx}: {error}")))
        .collect::<Result<Vec<Key>, String>>()?;
    Ok(Some(keys))
}

/// Writes `bytes` to `path` through a fsynced temporary file created 0600 beside it, then renames it into place.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    // A leftover from a crash keeps its old mode through `truncate`; start from a fresh file.
    match std::fs::remove_file(&tmp) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The encryption side of one gossip instance, shared by the actor and the push/pull tasks.
pub(crate) struct Crypto {
    /// `None`: encryption is off; everything travels in plaintext and sealed messages are dropped.
    keyring: Option<RwLock<Keyring>>,
    /// Refuse plaintext messages (Consul's `encrypt_verify_incoming`).
    verify_incoming: bool,
    /// Seal what we send (Consul's `encrypt_verify_outgoing`).
    verify_outgoing: bool,
    /// Peers already warned about; one log line per peer, every rejection counted.
    warned: Mutex<HashSet<IpAddr>>,
}

impl Crypto {
    pub(crate) fn new(encryption: Option<super::Encryption>) -> Crypto {
        match encryption {
            None => Crypto { keyring: None, verify_incoming: false, verify_outgoing: false, warned: Mutex::default() },
            Some(super::Encryption { keyring, verify_incoming, verify_outgoing }) => Crypto {
                keyring: Some(RwLock::new(keyring)),
                verify_incoming,
                verify_outgoing,
                warned: Mutex::default(),
            },
        }
    }

    /// Whether messages go out sealed.
    pub(crate) fn seals_outgoing(&self) -> bool {
        self.keyring.is_some() && self.verify_outgoing
    }

    /// Whether a plaintext message is accepted.
    pub(crate) fn accepts_plaintext(&self) -> bool {
        self.keyring.is_none() || !self.verify_incoming
    }

    pub(crate) fn enabled(&self) -> bool {
        self.keyring.is_some()
    }

    /// `header | nonce | AES-GCM(plaintext, aad = header)` under the primary key (or `with`, when given and held).
    pub(crate) fn seal(&self, header: &[u8], plaintext: &[u8], with: Option<&Key>) -> Option<Vec<u8>> {
        let keyring = self.keyring.as_ref()?.read().unwrap_or_else(PoisonError::into_inner);
        let cipher = match with {
            Some(key) => keyring.keys.iter().find(|(held, _)| held == key).or(keyring.keys.first()),
            None => keyring.keys.first(),
        }
        .map(|(_, cipher)| cipher)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let sealed = cipher.seal(&nonce, header, plaintext)?;
        let mut out = Vec::with_capacity(header.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// Opens `nonce | ciphertext | tag` sealed under `header` with whichever installed key fits; also says which
    /// (its index, primary first).
    pub(crate) fn open(&self, header: &[u8], sealed: &[u8]) -> Option<(Vec<u8>, usize)> {
        let keyring = self.keyring.as_ref()?.read().unwrap_or_else(PoisonError::into_inner);
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        keyring.keys.iter().enumerate().find_map(|(idx, (_, cipher))| Some((cipher.open(nonce, header, body)?, idx)))
    }

    /// The key at `idx` (primary first), as [`Crypto::open`] reported it.
    pub(crate) fn key_at(&self, idx: usize) -> Option<Key> {
        let keyring = self.keyring.as_ref()?.read().unwrap_or_else(PoisonError::into_inner);
        keyring.keys.get(idx).map(|(key, _)| key.clone())
    }

    /// The primary key, to keep sealing a multi-step operation's messages with one key.
    pub(crate) fn primary(&self) -> Option<Key> {
        let keyring = self.keyring.as_ref()?.read().unwrap_or_else(PoisonError::into_inner);
        keyring.keys.first().map(|(key, _)| key.clone())
    }

    /// This agent's keys, primary first; `None` when encryption is off.
    pub(crate) fn keys(&self) -> Option<Vec<Key>> {
        Some(self.keyring.as_ref()?.read().unwrap_or_else(PoisonError::into_inner).keys())
    }

    /// Applies a key operation to this agent's keyring.
    pub(crate) fn apply(&self, op: &KeyOp) -> Result<Vec<Key>, String> {
        let Some(keyring) = &self.keyring else {
            return Err(NOT_ENABLED.to_owned());
        };
        let mut keyring = keyring.write().unwrap_or_else(PoisonError::into_inner);
        let applied = keyring.apply(op);
        match (&applied, op) {
            (Ok(_), KeyOp::Install(_)) => tracing::info!("gossip: installed a new encryption key"),
            (Ok(_), KeyOp::Use(_)) => tracing::info!("gossip: changed the primary encryption key"),
            (Ok(_), KeyOp::Remove(_)) => tracing::info!("gossip: removed an encryption key"),
            (Err(error), _) => tracing::warn!("gossip: keyring operation refused: {error}"),
            (Ok(_), KeyOp::List) => {}
        }
        applied
    }

    /// Whether a rejection from `peer` should be logged: the first one only.
    pub(crate) fn first_rejection(&self, peer: IpAddr) -> bool {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        warned.len() < MAX_WARNED_PEERS && warned.insert(peer)
    }
}

/// The answer of an agent without encryption to a keyring operation.
pub(crate) const NOT_ENABLED: &str = "Gossip encryption is not enabled on this agent (no `encrypt` key or keyring)";

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8, len: usize) -> Key {
        Key::from_bytes(vec![byte; len]).expect("valid length")
    }

    fn crypto(keys: Vec<Key>) -> Crypto {
        Crypto::new(Some(super::super::Encryption {
            keyring: Keyring::in_memory(keys),
            verify_incoming: true,
            verify_outgoing: true,
        }))
    }

    #[test]
    fn keys_parse_from_base64_of_the_three_aes_sizes_only() {
        for len in [16, 24, 32] {
            let text = base64::engine::general_purpose::STANDARD.encode(vec![7u8; len]);
            assert_eq!(Key::parse(&text).map(|key| key.as_bytes().len()), Ok(len));
        }
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 20]);
        assert_eq!(Key::parse(&short), Err(KeyError::BadLength(20)));
        assert_eq!(Key::parse("not base64!"), Err(KeyError::NotBase64));
        assert_eq!(Key::generate().as_bytes().len(), 32);
        assert_ne!(Key::generate(), Key::generate());
        assert_eq!(format!("{:?}", key(9, 16)), "Key(16 bytes)", "no key bytes in debug output");
    }

    #[test]
    fn sealed_messages_open_with_any_installed_key_and_nothing_else() {
        for len in [16, 24, 32] {
            let (old, new) = (key(1, len), key(2, len));
            let sender = crypto(vec![old.clone()]);
            let sealed = sender.seal(b"hdr", b"hello", None).expect("sealed");
            assert!(!sealed.windows(5).any(|w| w == b"hello"), "the plaintext does not show");
            assert_eq!(sealed.len(), 3 + 5 + SEAL_OVERHEAD);
            let receiver = crypto(vec![new.clone(), old.clone()]);
            assert_eq!(receiver.open(b"hdr", &sealed[3..]), Some((b"hello".to_vec(), 1)));
            assert_eq!(receiver.open(b"hdX", &sealed[3..]), None, "the header is authenticated");
            let mut flipped = sealed.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert_eq!(receiver.open(b"hdr", &flipped[3..]), None, "a changed byte fails");
            assert_eq!(crypto(vec![new]).open(b"hdr", &sealed[3..]), None, "a wrong key fails");
            assert_eq!(receiver.open(b"hdr", &sealed[3..10]), None, "a short message fails");
        }
    }

    #[test]
    fn keyring_operations_follow_memberlist_rules_and_persist_0600() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let (first, second) = (key(1, 32), key(2, 16));
        let mut keyring = Keyring::load_or_seed(Some(dir.path()), Some(first.clone()))
            .map_err(anyhow::Error::msg)?
            .ok_or_else(|| anyhow::anyhow!("seeded"))?;
        let path = keyring_path(dir.path());
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(keyring.apply(&KeyOp::Use(second.clone())), Err("Requested key is not in the keyring".into()));
        assert_eq!(keyring.apply(&KeyOp::Install(second.clone())), Ok(vec![first.clone(), second.clone()]));
        assert_eq!(keyring.apply(&KeyOp::Install(second.clone())), Ok(vec![first.clone(), second.clone()]));
        assert_eq!(keyring.apply(&KeyOp::Use(second.clone())), Ok(vec![second.clone(), first.clone()]));
        assert_eq!(
            keyring.apply(&KeyOp::Remove(second.clone())),
            Err("Removing the primary key is not allowed".into())
        );
        assert_eq!(keyring.apply(&KeyOp::Remove(first.clone())), Ok(vec![second.clone()]));
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text, format!("[\"{}\"]", second.to_base64()));
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);

        // The file wins over a differing `encrypt`; without a file or a seed there is no keyring.
        let reopened = Keyring::load_or_seed(Some(dir.path()), Some(first)).map_err(anyhow::Error::msg)?;
        assert_eq!(reopened.map(|keyring| keyring.keys()), Some(vec![second]));
        let empty = tempfile::tempdir()?;
        assert!(Keyring::load_or_seed(Some(empty.path()), None).map_err(anyhow::Error::msg)?.is_none());
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))?;
        std::fs::write(&path, b"[\"short\"]")?;
        let error = Keyring::load_or_seed(Some(dir.path()), None).err().unwrap_or_default();
        assert!(error.contains("key 0: the key is not valid base64"), "{error}");
        Ok(())
    }
}
