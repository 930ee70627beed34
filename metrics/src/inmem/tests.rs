//! The interval sink's aggregation, interval choice and JSON shape, with the interval numbers given explicitly.

use metrics::{Key, Label};

use super::{InmemSink, lock};

/// 2017-08-08 02:55:10 UTC, the timestamp of Consul's documented example, as an interval number.
const EPOCH: u64 = 150_216_091;

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, *v)).collect::<Vec<_>>())
}

#[test]
fn a_counter_aggregates_its_interval_as_go_metrics_does() {
    let sink = InmemSink::starting_at(EPOCH);
    let _handle = sink.counter(&key("consul.kvs.apply", &[]));
    for value in [1.0, 2.0, 3.0] {
        lock(&sink.counters)[0].ingest(EPOCH, value);
    }
    let summary = sink.summary(EPOCH);
    assert_eq!(summary.timestamp, "2017-08-08 02:55:10 +0000 UTC");
    let [counter] = summary.counters.as_slice() else { panic!("one counter: {summary:?}") };
    assert_eq!((counter.name.as_str(), counter.count, counter.sum), ("consul.kvs.apply", 3, 6.0));
    assert_eq!((counter.min, counter.max, counter.mean), (1.0, 3.0, 2.0));
    assert!((counter.rate - 0.6).abs() < 1e-12, "rate is the sum per second of 10: {}", counter.rate);
    assert!((counter.stddev - 1.0).abs() < 1e-12, "sample stddev of 1,2,3: {}", counter.stddev);
}

#[test]
fn the_summary_shows_the_last_finished_interval_once_there_is_one() {
    let sink = InmemSink::starting_at(EPOCH);
    let _handle = sink.histogram(&key("consul.raft.commitTime", &[]));
    let metric = lock(&sink.samples)[0].clone();
    metric.ingest(EPOCH, 5.0);
    metric.ingest(EPOCH + 1, 7.0);
    metric.ingest(EPOCH + 1, 9.0);
    // During the second interval the first, finished one is shown; the second's values wait for it to end.
    let shown = sink.summary(EPOCH + 1);
    assert_eq!(shown.samples.len(), 1);
    assert_eq!((shown.samples[0].count, shown.samples[0].sum), (1, 5.0));
    let next = sink.summary(EPOCH + 2);
    assert_eq!((next.samples[0].count, next.samples[0].sum, next.samples[0].min), (2, 16.0, 7.0));
    // An interval with nothing recorded shows nothing.
    assert!(sink.summary(EPOCH + 5).samples.is_empty());
}

#[test]
fn gauges_keep_their_last_value_and_are_listed_by_name_then_labels() {
    let sink = InmemSink::starting_at(EPOCH);
    let up = sink.gauge(&key("consul.serf.members", &[("status", "alive")]));
    let down = sink.gauge(&key("consul.serf.members", &[("status", "failed")]));
    let _never_set = sink.gauge(&key("consul.a.gauge", &[]));
    up.set(3.0);
    up.increment(2.0);
    down.set(1.0);
    down.decrement(1.0);
    let gauges = sink.summary(EPOCH + 7).gauges;
    let shown: Vec<(&str, f64, &str)> =
        gauges.iter().map(|g| (g.name.as_str(), g.value, g.labels["status"].as_str())).collect();
    assert_eq!(shown, [("consul.serf.members", 5.0, "alive"), ("consul.serf.members", 0.0, "failed")]);
}

#[test]
fn the_json_has_consuls_field_names() {
    let sink = InmemSink::starting_at(EPOCH);
    let _handle = sink.counter(&key("consul.dns.domain_query", &[("node", "n1")]));
    lock(&sink.counters)[0].ingest(EPOCH, 1.0);
    let json = serde_json::to_value(sink.summary(EPOCH)).expect("encodes");
    let keys = |v: &serde_json::Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(&json), ["Counters", "Gauges", "Points", "Samples", "Timestamp"]);
    assert_eq!(keys(&json["Counters"][0]), ["Count", "Labels", "Max", "Mean", "Min", "Name", "Rate", "Stddev", "Sum"]);
    assert_eq!(json["Counters"][0]["Labels"], serde_json::json!({"node": "n1"}));
}
