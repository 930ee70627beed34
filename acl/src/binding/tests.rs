//! Bind-name templates as Consul renders and checks them.

use std::collections::BTreeMap;

use super::{BindType, bind_name_for, check_binding_rule, render_bind_name};

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn templates_render_and_refuse() {
    let v = vars(&[("value.service", "web"), ("value.team", "Ops")]);
    let cases: [(&str, Result<&str, &str>); 6] = [
        ("${value.service}", Ok("web")),
        ("svc-${ value.service }-x", Ok("svc-web-x")),
        ("plain", Ok("plain")),
        ("${value.nope}", Err("unknown variable accessed: value.nope")),
        ("${value.service", Err("unclosed")),
        ("${value.team}", Err("uppercase characters")),
    ];
    for (template, expect) in cases {
        match (render_bind_name(template, &v), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{template}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{template}: {got:?}"),
            (got, want) => panic!("{template}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn bind_names_are_checked_for_their_type() {
    let v = vars(&[("value.name", "web_1"), ("value.odd", "a.b")]);
    assert_eq!(bind_name_for(BindType::Service, "${value.name}", None, &v), Ok(("web_1".into(), None)));
    assert!(bind_name_for(BindType::Node, "${value.odd}", None, &v).is_err());
    assert!(bind_name_for(BindType::Role, "${value.odd}", None, &v).is_err());
    assert_eq!(
        bind_name_for(BindType::TemplatedPolicy, "builtin/service", Some("${value.name}"), &v),
        Ok(("builtin/service".into(), Some("web_1".into())))
    );
    assert!(bind_name_for(BindType::TemplatedPolicy, "builtin/nope", None, &v).is_err());
    assert!(check_binding_rule(BindType::Service, "${value.service}", None, ["service"].into_iter()).is_ok());
    let err = check_binding_rule(BindType::Service, "${value.other}", None, ["service"].into_iter()).unwrap_err();
    assert!(err.contains("unknown variable accessed: value.other"), "{err}");
    assert!(BindType::parse("group").is_err());
}
