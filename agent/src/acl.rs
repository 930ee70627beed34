//! The agent's side of ACLs: its own tokens (`acl.tokens`, `/v1/agent/token/*`, persisted on request), and resolving a
//! caller's token into what it may do, for the endpoints the agent answers itself (agent, members, jobs, DNS).
//!
//! Everything that reads or writes the replicated state is authorized by the server that serves it
//! (`roster_server::Server::write_as` and friends); this module never widens that. A server agent resolves tokens from
//! its own state. A client agent asks a server and caches the answer for the smallest of `token_ttl`, `policy_ttl` and
//! `role_ttl` (one round trip brings the token with its policies and roles); when no server answers it follows
//! `down_policy`.
//!
//! Secrets are never logged: `Debug` of the token store names which tokens are set, not their values.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use roster_kv::{ANONYMOUS_TOKEN_SECRET, Answer, Query, secret_matches};
use roster_server::{Access, AclSettings, Consistency, PolicyCache};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::Backend;
use crate::clock::unix_ms;
use crate::config::{AclConfig, DefaultPolicy, DownPolicy};

/// The kinds of agent token `/v1/agent/token/<kind>` sets, with Consul's legacy aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `default` (`acl_token`).
    Default,
    /// `agent` (`acl_agent_token`).
    Agent,
    /// `agent_recovery` (`agent_master`, `acl_agent_master_token`).
    AgentRecovery,
    /// `replication` (`acl_replication_token`).
    Replication,
    /// `config_file_service_registration`.
    ConfigFileServiceRegistration,
    /// `dns` (`dns_token`).
    Dns,
}

impl TokenKind {
    /// The kind a path segment names, with Consul's aliases.
    pub fn parse(name: &str) -> Option<TokenKind> {
        Some(match name {
            "default" | "acl_token" => TokenKind::Default,
            "agent" | "acl_agent_token" => TokenKind::Agent,
            "agent_recovery" | "agent_master" | "acl_agent_master_token" => TokenKind::AgentRecovery,
            "replication" | "acl_replication_token" => TokenKind::Replication,
            "config_file_service_registration" => TokenKind::ConfigFileServiceRegistration,
            "dns" | "dns_token" => TokenKind::Dns,
            _ => return None,
        })
    }
}

/// The tokens the agent holds, as persisted in `data_dir/acl-tokens.json` (mode 0600).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Tokens {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent_recovery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replication: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_file_service_registration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns: Option<String>,
}

impl Tokens {
    fn get(&self, kind: TokenKind) -> Option<&String> {
        match kind {
            TokenKind::Default => self.default.as_ref(),
            TokenKind::Agent => self.agent.as_ref(),
            TokenKind::AgentRecovery => self.agent_recovery.as_ref(),
            TokenKind::Replication => self.replication.as_ref(),
            TokenKind::ConfigFileServiceRegistration => self.config_file_service_registration.as_ref(),
            TokenKind::Dns => self.dns.as_ref(),
        }
    }

    fn slot(&mut self, kind: TokenKind) -> &mut Option<String> {
        match kind {
            TokenKind::Default => &mut self.default,
            TokenKind::Agent => &mut self.agent,
            TokenKind::AgentRecovery => &mut self.agent_recovery,
            TokenKind::Replication => &mut self.replication,
            TokenKind::ConfigFileServiceRegistration => &mut self.config_file_service_registration,
            TokenKind::Dns => &mut self.dns,
        }
    }
}

/// The agent's ACL state. One per agent, shared by the HTTP API, DNS and the agent's own sync.
pub struct Acl {
    config: AclConfig,
    settings: AclSettings,
    node_name: String,
    tokens: RwLock<Tokens>,
    /// Where tokens set through the API are kept, when `enable_token_persistence` is on and there is a data dir.
    persist_path: Option<PathBuf>,
    policies: Arc<PolicyCache>,
    /// A client agent's resolved tokens, by the SHA-256 of the secret.
    cache: Arc<Cache>,
}

/// Resolved tokens by the SHA-256 of their secret, with when they were fetched, and the ones being refreshed in the
/// background (`async-cache`), so one token is never refreshed twice at once.
#[derive(Default)]
struct Cache {
    tokens: Mutex<HashMap<[u8; 32], (Instant, Access)>>,
    refreshing: Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl Cache {
    fn get(&self, digest: &[u8; 32]) -> Option<(Instant, Access)> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).get(digest).cloned()
    }

    fn put(&self, digest: [u8; 32], access: Access) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= CACHE_MAX {
            tokens.clear();
        }
        tokens.insert(digest, (Instant::now(), access));
    }

    fn forget(&self, digest: &[u8; 32]) {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).remove(digest);
    }
}

/// Asks a server for `secret` and caches what it grants; an unknown token is forgotten.
async fn fetch(
    backend: &Backend,
    settings: &AclSettings,
    policies: &PolicyCache,
    cache: &Cache,
    secret: &str,
    digest: [u8; 32],
) -> Result<Access, roster_server::Error> {
    let query = Query::AclResolve { secret_id: secret.to_owned() };
    let answer = Box::pin(backend.query_as(secret, Consistency::Stale, 0, Duration::ZERO, &query)).await;
    match answer {
        Ok((Answer::AclResolved(Some(resolved)), ..)) => {
            let access = Access::from_resolved(settings, &resolved, policies);
            cache.put(digest, access.clone());
            Ok(access)
        }
        Ok(_) => {
            cache.forget(&digest);
            Err(roster_server::Error::AclNotFound)
        }
        Err(err @ (roster_server::Error::AclNotFound | roster_server::Error::AclRootDenied)) => {
            cache.forget(&digest);
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// More cached tokens than this and the cache starts over.
const CACHE_MAX: usize = 8192;

impl Acl {
    /// The agent's ACL state from its config; tokens persisted by an earlier run win over the config file's, as in Consul.
    pub fn new(config: &AclConfig, datacenter: &str, node_name: &str, data_dir: Option<&std::path::Path>) -> Acl {
        let from_config = Tokens {
            default: config.tokens.default.clone(),
            agent: config.tokens.agent.clone(),
            agent_recovery: config.tokens.agent_recovery.clone(),
            replication: config.tokens.replication.clone(),
            config_file_service_registration: config.tokens.config_file_service_registration.clone(),
            dns: config.tokens.dns.clone(),
        };
        let persist_path = data_dir.filter(|_| config.enable_token_persistence).map(|dir| dir.join("acl-tokens.json"));
        let tokens = match persist_path.as_deref().map(load_tokens) {
            Some(Ok(Some(saved))) => merge_saved(from_config, saved),
            Some(Err(err)) => {
                tracing::warn!(%err, "could not read the persisted agent tokens; using the config file's");
                from_config
            }
            _ => from_config,
        };
        Acl {
            config: config.clone(),
            settings: AclSettings {
                default_policy: match config.default_policy {
                    DefaultPolicy::Allow => roster_acl::DefaultPolicy::Allow,
                    DefaultPolicy::Deny => roster_acl::DefaultPolicy::Deny,
                },
                enable_key_list_policy: config.enable_key_list_policy,
                datacenter: datacenter.to_owned(),
            },
            node_name: node_name.to_owned(),
            tokens: RwLock::new(tokens),
            persist_path,
            policies: Arc::new(PolicyCache::default()),
            cache: Arc::new(Cache::default()),
        }
    }

    /// Whether ACLs are enforced.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// What the servers of this agent enforce, for `roster_server::Config::acl`.
    pub fn server_settings(&self) -> Option<AclSettings> {
        self.enabled().then(|| self.settings.clone())
    }

    /// The configured default policy's name, for `X-Consul-Default-ACL-Policy`.
    pub fn default_policy_name(&self) -> &'static str {
        match self.config.default_policy {
            DefaultPolicy::Allow => "allow",
            DefaultPolicy::Deny => "deny",
        }
    }

    /// The secret a request acts with: the one it sent, else the agent's default token, else anonymous (empty).
    pub fn caller_secret(&self, sent: Option<&str>) -> String {
        match sent {
            Some(secret) if !secret.is_empty() => secret.to_owned(),
            _ => self.token(TokenKind::Default).unwrap_or_default(),
        }
    }

    /// The secret of the agent's own catalog sync: the agent token, else the default token.
    pub fn agent_secret(&self) -> String {
        self.token(TokenKind::Agent).or_else(|| self.token(TokenKind::Default)).unwrap_or_default()
    }

    /// The secret DNS answers with: the dns token, else the default token.
    pub fn dns_secret(&self) -> String {
        self.token(TokenKind::Dns).or_else(|| self.token(TokenKind::Default)).unwrap_or_default()
    }

    /// The secret services and checks from config files register with: their own token, else the agent's.
    pub fn config_file_secret(&self) -> String {
        self.token(TokenKind::ConfigFileServiceRegistration).unwrap_or_else(|| self.agent_secret())
    }

    /// The `initial_management` token from the config, which the leader creates.
    pub fn initial_management(&self) -> Option<&str> {
        self.config.tokens.initial_management.as_deref()
    }

    fn token(&self, kind: TokenKind) -> Option<String> {
        // Every request reads the default token: a shared lock, so concurrent requests never wait on each other.
        self.tokens.read().unwrap_or_else(PoisonError::into_inner).get(kind).cloned()
    }

    /// Sets one of the agent's tokens (empty clears it) and persists the set when asked to.
    pub fn set_token(&self, kind: TokenKind, secret: &str) -> std::io::Result<()> {
        let snapshot = {
            let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
            *tokens.slot(kind) = (!secret.is_empty()).then(|| secret.to_owned());
            tokens.clone()
        };
        match &self.persist_path {
            Some(path) => save_tokens(path, &snapshot),
            None => Ok(()),
        }
    }

    /// What the caller holding `secret` may do, for the endpoints the agent answers itself.
    pub async fn resolve(&self, backend: &Backend, secret: &str) -> Result<Access, roster_server::Error> {
        if !self.enabled() {
            return Ok(Access::manage_all());
        }
        if let Some(recovery) = self.token(TokenKind::AgentRecovery)
            && !secret.is_empty()
            && secret_matches(&recovery, secret)
        {
            return Ok(self.recovery_access());
        }
        match backend {
            Backend::Local(server) => server.resolve_token(secret),
            // Boxed: the RPC call's future is deep enough to overflow the compiler's layout recursion when inlined here.
            Backend::Remote(_) => Box::pin(self.resolve_remote(backend, secret)).await,
        }
    }

    /// Consul's agent recovery policy: write on this agent, read on every node, resolved without the servers.
    fn recovery_access(&self) -> Access {
        let rules =
            format!("agent {:?} {{ policy = \"write\" }}\nnode_prefix \"\" {{ policy = \"read\" }}", self.node_name);
        let authorizer = match roster_acl::Policy::parse(&rules) {
            Ok(policy) => roster_acl::Authorizer::new(&[policy], roster_acl::DefaultPolicy::Deny),
            Err(_) => roster_acl::Authorizer::deny_all(),
        };
        Access::local("agent-recovery-token", authorizer)
    }

    async fn resolve_remote(&self, backend: &Backend, secret: &str) -> Result<Access, roster_server::Error> {
        let asked = if secret.is_empty() { ANONYMOUS_TOKEN_SECRET } else { secret };
        let digest: [u8; 32] = Sha256::digest(asked.as_bytes()).into();
        let cached = self.cache.get(&digest);
        let now_ms = unix_ms();
        if let Some((at, access)) = &cached {
            if at.elapsed() < self.cache_ttl() {
                return unexpired(access.clone(), now_ms);
            }
            // async-cache: answer from the expired entry at once and refresh it behind the request.
            if self.config.down_policy == DownPolicy::AsyncCache {
                self.refresh_in_background(backend, asked, digest);
                return unexpired(access.clone(), now_ms);
            }
        }
        match fetch(backend, &self.settings, &self.policies, &self.cache, asked, digest).await {
            Ok(access) => unexpired(access, now_ms),
            Err(err @ (roster_server::Error::AclNotFound | roster_server::Error::AclRootDenied)) => Err(err),
            Err(err) => self.down(cached.map(|(_, access)| access), err, now_ms),
        }
    }

    /// Refreshes one cached token off the request path, unless a refresh of it is already running.
    fn refresh_in_background(&self, backend: &Backend, secret: &str, digest: [u8; 32]) {
        if !self.cache.refreshing.lock().unwrap_or_else(PoisonError::into_inner).insert(digest) {
            return;
        }
        let (backend, settings, policies, cache) =
            (backend.clone(), self.settings.clone(), self.policies.clone(), self.cache.clone());
        let secret = secret.to_owned();
        tokio::spawn(async move {
            if let Err(err) = fetch(&backend, &settings, &policies, &cache, &secret, digest).await {
                tracing::debug!(%err, "background token refresh failed; the cached entry stays");
            }
            cache.refreshing.lock().unwrap_or_else(PoisonError::into_inner).remove(&digest);
        });
    }

    /// No server answered: `down_policy` decides.
    fn down(
        &self,
        cached: Option<Access>,
        err: roster_server::Error,
        now_ms: u64,
    ) -> Result<Access, roster_server::Error> {
        tracing::warn!(%err, "no server answered a token resolution; applying acl.down_policy");
        match (self.config.down_policy, cached) {
            (DownPolicy::Allow, _) => Ok(Access::manage_all()),
            (DownPolicy::ExtendCache | DownPolicy::AsyncCache, Some(access)) => unexpired(access, now_ms),
            (DownPolicy::Deny, _) | (_, None) => Ok(Access::local("", roster_acl::Authorizer::deny_all())),
        }
    }

    /// How long a client trusts a resolution: the smallest of the three TTLs, since one answer carries all three kinds.
    fn cache_ttl(&self) -> Duration {
        self.config.token_ttl.min(self.config.policy_ttl).min(self.config.role_ttl)
    }
}

/// How often the leader checks that the built-in ACL records and the initial management token exist.
const LEADER_DUTY_EVERY: Duration = Duration::from_secs(2);

/// Runs the leader's ACL duties for as long as `cancel` allows: while this server leads, the built-in policies and the
/// anonymous token exist (`Command::AclInit`), expired tokens are deleted, and the `initial_management` token of the
/// config exists — through the bootstrap when ACLs were never bootstrapped, so `/v1/acl/bootstrap` is then refused,
/// as in Consul.
/// Level-triggered: a lost write costs one period, and a new leader repairs what the old one left.
pub fn spawn_leader_duties(
    acl: std::sync::Arc<Acl>,
    server: roster_server::Server,
    cancel: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            if server.is_leader()
                && let Err(err) = leader_pass(&acl, &server).await
            {
                tracing::warn!(%err, "ACL leader duties failed; retrying");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(LEADER_DUTY_EVERY) => {}
            }
        }
    });
}

async fn leader_pass(acl: &Acl, server: &roster_server::Server) -> roster_server::Result<()> {
    use roster_kv::{ANONYMOUS_TOKEN_ACCESSOR_ID, AclLink, AclToken, Command, GLOBAL_MANAGEMENT_POLICY_ID};
    let initial = acl.initial_management();
    let (needs_init, needs_initial, bootstrapped) = server.read_local(|state| {
        let builtins = state.acl_policies().0.iter().filter(|p| p.id.starts_with("00000000-0000-0000-0000-")).count();
        (
            builtins < 2 || state.acl_token(ANONYMOUS_TOKEN_ACCESSOR_ID).is_none(),
            initial.is_some_and(|secret| state.acl_token_by_secret(secret).is_none()),
            state.acl_bootstrap_index().is_some(),
        )
    });
    if needs_init {
        server.write(Command::AclInit { now_ms: unix_ms() }).await?;
    }
    // Expired tokens are refused from their expiry on; reaping them keeps lists and the state from growing, as
    // Consul's leader does.
    let now_ms = unix_ms();
    let expired: Vec<String> = server.read_local(|state| {
        state
            .acl_tokens()
            .0
            .into_iter()
            .filter(|t| t.expiration_time_ms.is_some_and(|at| at <= now_ms))
            .map(|t| t.accessor_id)
            .collect()
    });
    for accessor_id in expired {
        server.write(Command::AclTokenDelete { accessor_id }).await?;
    }
    if let (true, Some(secret)) = (needs_initial, initial) {
        let token = AclToken {
            accessor_id: uuid::Uuid::new_v4().to_string(),
            secret_id: secret.to_owned(),
            description: "Initial Management Token".into(),
            policies: vec![AclLink { id: GLOBAL_MANAGEMENT_POLICY_ID.into(), name: "global-management".into() }],
            create_time_ms: unix_ms(),
            ..AclToken::default()
        };
        let cmd = if bootstrapped {
            Command::AclTokenSet(Box::new(token))
        } else {
            Command::AclBootstrap { token: Box::new(token), reset_index: 0 }
        };
        server.write(cmd).await?;
        tracing::info!("created the initial management token from the config");
    }
    Ok(())
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl").field("enabled", &self.enabled()).finish_non_exhaustive()
    }
}

fn unexpired(access: Access, now_ms: u64) -> Result<Access, roster_server::Error> {
    if access.expired(now_ms) { Err(roster_server::Error::AclNotFound) } else { Ok(access) }
}

/// Tokens persisted earlier override the config file's for the kinds they set.
fn merge_saved(mut config: Tokens, saved: Tokens) -> Tokens {
    let kinds = [
        TokenKind::Default,
        TokenKind::Agent,
        TokenKind::AgentRecovery,
        TokenKind::Replication,
        TokenKind::ConfigFileServiceRegistration,
        TokenKind::Dns,
    ];
    let mut saved = saved;
    for kind in kinds {
        if let Some(secret) = saved.slot(kind).take() {
            *config.slot(kind) = Some(secret);
        }
    }
    config
}

fn load_tokens(path: &std::path::Path) -> std::io::Result<Option<Tokens>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(std::io::Error::other),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Writes the tokens atomically with mode 0600: a temporary file in the same directory, fsynced, then renamed.
fn save_tokens(path: &std::path::Path, tokens: &Tokens) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(tokens).map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
