//! User events: `PUT /v1/event/fire/:name` and `GET /v1/event/list`, on one agent and spread across a cluster.

use std::time::{Duration, Instant};

use roster_tests::{TestAgent, TestCluster, b64, eventually};
use serde_json::{Value, json};

/// The Lamport time of the first event named `name` that `agent` keeps.
async fn ltime(agent: &TestAgent, name: &str) -> Option<u64> {
    agent.get(&format!("/v1/event/list?name={name}")).await.json()[0]["LTime"].as_u64()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().filter_map(|e| e["Name"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn fire_returns_consuls_shape_and_list_holds_it() {
    let agent = TestAgent::dev("events-dev").await;
    let fired = agent.put("/v1/event/fire/deploy", "v1.2").await;
    fired.expect_status(200);
    let event = fired.json();
    assert_eq!(event["Name"], "deploy");
    assert_eq!(event["Payload"], b64("v1.2"));
    assert_eq!((event["Version"].clone(), event["NodeFilter"].clone()), (json!(1), json!("")));
    assert!(event["ID"].as_str().is_some_and(|id| id.len() == 36), "{event}");
    assert_eq!(event["LTime"], 0, "Consul's fire answers before the event has a Lamport time");

    agent.put("/v1/event/fire/other", "").await.expect_status(200);
    let list = agent.get("/v1/event/list").await;
    list.expect_status(200);
    assert_eq!(names(&list.json()), ["deploy", "other"]);
    assert_eq!(list.json()[0]["LTime"], 1);
    assert_eq!(list.json()[1]["Payload"], Value::Null, "an empty payload is null, as Consul");
    assert_eq!(list.json()[1]["LTime"], 2);
    let deploys = agent.get("/v1/event/list?name=deploy").await;
    assert_eq!(names(&deploys.json()), ["deploy"]);
    assert_ne!(deploys.index(), list.index(), "the index follows the last event of the filtered list");
}

#[tokio::test]
async fn a_blocking_list_wakes_on_the_next_fire_only() {
    let agent = TestAgent::dev("events-block").await;
    let empty = agent.get("/v1/event/list").await;
    assert_eq!((empty.json(), empty.index()), (json!([]), 1), "no events is index 1, as Consul, so watchers block");
    // The waits are long, so an answer within the test's minute is the fire's wake-up. (Events are the agent's own,
    // not the servers' blocking queries, so no parked count says when the read waits: the fire comes 300 ms after.)
    let agent = &agent;
    let fire_later = |name: &'static str| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        agent.put(&format!("/v1/event/fire/{name}"), "").await.expect_status(200);
    };
    let within_a_minute = |path: String| async move {
        tokio::time::timeout(Duration::from_secs(60), agent.get(&path)).await.expect("woken by the fire")
    };
    let (first, ()) = tokio::join!(within_a_minute("/v1/event/list?index=1&wait=10m".to_owned()), fire_later("a"));
    assert_eq!(names(&first.json()), ["a"], "a watcher on an empty list is woken by the first event");
    let index = first.index();
    let path = format!("/v1/event/list?index={index}&wait=10m");
    let (woken, ()) = tokio::join!(within_a_minute(path), fire_later("b"));
    assert_eq!(names(&woken.json()), ["a", "b"]);
    assert_ne!(woken.index(), index);

    let started = Instant::now();
    let idle = agent.get(&format!("/v1/event/list?index={}&wait=1s", woken.index())).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "nothing new: it waits");
    assert_eq!(idle.index(), woken.index());
}

#[tokio::test]
async fn filters_decide_which_agents_keep_an_event_and_bad_input_is_refused() {
    let agent = TestAgent::dev("events-filter").await;
    agent
        .put_json("/v1/agent/service/register", &json!({"Name": "web", "Tags": ["primary"], "Port": 80}))
        .await
        .expect_status(200);
    agent.put("/v1/event/fire/for-other-nodes?node=^db-", "").await.expect_status(200);
    agent.put("/v1/event/fire/for-web?service=^web$&tag=prim", "").await.expect_status(200);
    agent.put("/v1/event/fire/for-api?service=^api$", "").await.expect_status(200);
    agent.put("/v1/event/fire/for-me?node=events-filter", "").await.expect_status(200);
    assert_eq!(names(&agent.get("/v1/event/list").await.json()), ["for-web", "for-me"]);

    let big = agent.put("/v1/event/fire/big", vec![b'x'; 513]).await;
    big.expect_status(400);
    assert!(big.text().contains("512"), "{}", big.text());
    agent.put("/v1/event/fire/bad?node=(", "").await.expect_status(400);
    agent.put("/v1/event/fire/tag-only?tag=x", "").await.expect_status(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_fired_on_one_agent_reaches_every_agent_once() {
    let cluster = TestCluster::start(1, 2).await;
    let (c1, c2) = (&cluster.clients[0], &cluster.clients[1]);
    let fired = c1.put("/v1/event/fire/rollout", "now").await;
    fired.expect_status(200);
    let id = fired.json()["ID"].clone();
    for agent in cluster.agents() {
        let list = eventually("the event everywhere", Duration::from_secs(10), || async {
            let list = agent.get("/v1/event/list?name=rollout").await.json();
            (!names(&list).is_empty()).then_some(list)
        })
        .await;
        assert_eq!(list.as_array().map(Vec::len), Some(1), "delivered once to {}: {list}", agent.node_name());
        assert_eq!(list[0]["ID"], id);
        assert_eq!(list[0]["Payload"], b64("now"));
    }
    // A node filter keeps it off the others, though they gossip it on.
    c2.put(&format!("/v1/event/fire/only-c1?node=^{}$", c1.node_name()), "").await.expect_status(200);
    eventually("c1 keeps it", Duration::from_secs(10), || async {
        names(&c1.get("/v1/event/list?name=only-c1").await.json()).first().cloned()
    })
    .await;
    assert!(names(&c2.get("/v1/event/list?name=only-c1").await.json()).is_empty());
    // A later fire on another agent has a higher Lamport time than the first: c2 has seen it.
    c2.put("/v1/event/fire/later", "").await.expect_status(200);
    let (first, later) = (ltime(c2, "rollout").await, ltime(c2, "later").await);
    assert!(first.is_some() && later > first, "rollout at {first:?}, later at {later:?}");
}
