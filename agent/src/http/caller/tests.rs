//! Which token a request acts with: Consul's precedence between `?token=`, `X-Consul-Token` and `Authorization: Bearer`.

use axum::http::{HeaderMap, HeaderValue};

use super::token_of;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).expect("valid header"));
    }
    map
}

#[test]
fn the_query_parameter_wins_then_the_consul_header_then_bearer() {
    let all = headers(&[("X-Consul-Token", "from-header"), ("Authorization", "Bearer from-bearer")]);
    assert_eq!(token_of(Some("a=1&token=from%2Dquery"), &all).as_deref(), Some("from-query"));
    assert_eq!(token_of(Some("a=1"), &all).as_deref(), Some("from-header"));
    let bearer = headers(&[("Authorization", "bEaReR  from-bearer trailing")]);
    assert_eq!(token_of(None, &bearer).as_deref(), Some("from-bearer"));
}

#[test]
fn empty_values_and_other_schemes_send_no_token() {
    let basic = headers(&[("Authorization", "Basic dXNlcjpwYXNz"), ("X-Consul-Token", "")]);
    assert_eq!(token_of(Some("token="), &basic), None);
    assert_eq!(token_of(None, &headers(&[("Authorization", "Bearer")])), None);
}
