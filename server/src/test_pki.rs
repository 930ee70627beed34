//! Test certificates: a CA, leaves signed by it with a given DNS name, and rustls configurations over them,
//! built as roster-tls will build them (client certificates verified against the CA when presented).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{RpcTls, TlsConfigs};

/// A test CA.
pub(crate) struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain and its key.
pub(crate) struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Pki { ca }
    }

    /// A leaf for `name` (`server.dc1.consul`, `client.dc1.consul`), usable by both sides of a handshake as Consul's are.
    pub(crate) fn leaf(&self, name: &str) -> Leaf {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf");
        Leaf {
            chain: vec![cert.der().clone(), self.ca.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA root");
        Arc::new(roots)
    }

    /// A server config presenting `leaf`, verifying client certificates when presented (absence is the RPC's to refuse).
    pub(crate) fn server_config(&self, leaf: &Leaf) -> Arc<ServerConfig> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots(), provider())
            .allow_unauthenticated()
            .build()
            .expect("client verifier");
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(leaf.chain.clone(), PrivateKeyDer::Pkcs8(leaf.key.clone_key()))
            .expect("server config");
        Arc::new(config)
    }

    /// A client config trusting the CA, presenting `leaf` if given.
    pub(crate) fn client_config(&self, leaf: Option<&Leaf>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.roots());
        let config = match leaf {
            Some(leaf) => builder
                .with_client_auth_cert(leaf.chain.clone(), PrivateKeyDer::Pkcs8(leaf.key.clone_key()))
                .expect("client config"),
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }

    /// `RpcTls` for an agent holding a certificate for `name`, with every `verify_*` on (dc1, consul).
    pub(crate) fn rpc_tls(&self, name: &str) -> RpcTls {
        let leaf = self.leaf(name);
        let configs = Fixed { server: self.server_config(&leaf), client: self.client_config(Some(&leaf)) };
        RpcTls {
            configs: Arc::new(configs),
            verify_incoming: true,
            verify_outgoing: true,
            verify_server_hostname: true,
            datacenter: "dc1".into(),
            domain: "consul.".into(),
        }
    }
}

/// Configurations that never change.
pub(crate) struct Fixed {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: Arc<ClientConfig>,
}

impl TlsConfigs for Fixed {
    fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}
