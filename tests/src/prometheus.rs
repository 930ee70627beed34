//! Reading an agent's metrics as Prometheus scrapes them, for tests that count what an action moved.

use crate::TestAgent;

/// The agent's exposition (`/v1/agent/metrics?format=prometheus`; the agent needs `prometheus_retention_time` set).
pub async fn scrape(agent: &TestAgent) -> String {
    let res = agent.get("/v1/agent/metrics?format=prometheus").await;
    res.expect_status(200);
    res.text()
}

/// The value of the sample line that starts with `series` (a name, with its labels as rendered), 0 when absent.
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap_or_else(|_| panic!("{series}: not a number: {value}")))
}
