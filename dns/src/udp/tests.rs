//! Unit tests of the receiving threads' lifecycle; what they answer is tested over the wire in `tests/`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

use super::Receivers;
use crate::answer::Zones;
use crate::cache::AnswerCache;
use crate::handler::DnsHandler;
use crate::view::{CatalogView, Instance, NodeRecord, ViewError};
use crate::{Config, Health};

/// One passing `web` instance.
struct OneInstance;

#[async_trait::async_trait]
impl CatalogView for OneInstance {
    async fn service_instances(&self, service: &str, _tag: Option<&str>) -> Result<Vec<Instance>, ViewError> {
        let node = NodeRecord { name: "n1".to_owned(), address: "10.0.0.1".to_owned(), ..NodeRecord::default() };
        let instance = Instance {
            service_id: "web-1".to_owned(),
            node,
            service_name: "web".to_owned(),
            address: String::new(),
            port: 80,
            tags: Vec::new(),
            weight_passing: 1,
            weight_warning: 1,
            health: Health::Passing,
        };
        Ok(if service == "web" { vec![instance] } else { Vec::new() })
    }

    async fn node(&self, _name: &str) -> Result<Option<NodeRecord>, ViewError> {
        Ok(None)
    }

    async fn nodes_with_address(&self, _ip: IpAddr) -> Result<Vec<NodeRecord>, ViewError> {
        Ok(Vec::new())
    }

    fn generation(&self) -> Option<u64> {
        Some(1)
    }
}

fn handler() -> DnsHandler {
    DnsHandler {
        config: Config::default().into(),
        zones: Zones { primary: Name::from_ascii("consul.").expect("apex"), alt: None },
        view: Arc::new(OneInstance),
        cache: Arc::new(AnswerCache::default()),
    }
}

/// Asks `server` for `web.service.consul. A` and returns the response code of the reply that carries our id.
async fn ask_web(server: std::net::SocketAddr, id: u16) -> ResponseCode {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii("web.service.consul.").expect("name"), RecordType::A));
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    client.send_to(&message.to_vec().expect("encode"), server).await.expect("send");
    let mut buffer = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buffer))
        .await
        .expect("a reply in time")
        .expect("recv");
    let reply = Message::from_vec(&buffer[..len]).expect("decode");
    assert_eq!(reply.metadata.id, id);
    reply.metadata.response_code
}

#[tokio::test]
async fn stop_wakes_and_joins_every_receiving_thread_of_every_socket() {
    let (first, second) =
        (UdpSocket::bind("127.0.0.1:0").await.expect("bind"), UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    let addrs = [first.local_addr().expect("addr"), second.local_addr().expect("addr")];
    let (handler, misses, mut receivers) = (handler(), TaskTracker::new(), Receivers::default());
    receivers.start(first, &handler, 2, &misses, &Handle::current()).expect("start");
    receivers.start(second, &handler, 3, &misses, &Handle::current()).expect("start");
    // Both sockets answer: the first question is a miss (answered by a task on this runtime), the second a hit.
    for (idx, addr) in addrs.into_iter().enumerate() {
        let id = u16::try_from(idx).expect("two") * 2;
        assert_eq!(ask_web(addr, id).await, ResponseCode::NoError);
        assert_eq!(ask_web(addr, id + 1).await, ResponseCode::NoError);
    }
    // Nothing is sent to the sockets now: each thread must notice the stop flag from a blocked receive.
    let joined = tokio::time::timeout(Duration::from_secs(5), receivers.stop()).await.expect("stopped in time");
    assert_eq!(joined, 5, "every thread ended and was joined");
    misses.close();
    misses.wait().await;
}
