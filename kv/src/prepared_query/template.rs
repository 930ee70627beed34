//! Prepared query templates: the part of HashiCorp's HIL that Consul's templates use, parsed and rendered.
//!
//! Every string of a template's `Service` block (the service name, tags, meta values, ignored check IDs, `Near`,
//! failover datacenters) may hold `${...}` interpolations: the variables `name.full` (the name asked),
//! `name.prefix` (the template's own name), `name.suffix` (the name asked without that prefix), `agent.segment`, and
//! the function `match(N)`, group N of `Template.Regexp` matched against the name asked ("" when it did not match or
//! has no such group). `$${` is a literal `${`. Anything else HIL could say (arithmetic, string literals, other
//! functions) is refused when the template is stored, so a stored template always renders.

use regex::Regex;

use super::{PreparedQuery, ServiceQuery, TEMPLATE_NAME_PREFIX_MATCH};

/// What rendering knows of the agent that executes the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderContext {
    /// The agent's network segment (`${agent.segment}`); roster has none, so this is "".
    pub segment: String,
}

/// A template checked and ready to render: its query and its compiled regular expression.
#[derive(Debug, Clone)]
pub struct CompiledTemplate {
    query: PreparedQuery,
    regexp: Option<Regex>,
}

/// One piece of an interpolated string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    NameFull,
    NamePrefix,
    NameSuffix,
    AgentSegment,
    Match(i64),
}

impl CompiledTemplate {
    /// Checks a template as Consul's `prepared_query.Compile` does: its type, every service field's syntax, its
    /// regular expression, and a test render for its own name. The errors are Consul's texts.
    pub fn compile(query: &PreparedQuery) -> Result<CompiledTemplate, String> {
        if query.template.kind != TEMPLATE_NAME_PREFIX_MATCH {
            return Err(format!("Bad Template.Type '{}'", query.template.kind));
        }
        let mut service = query.service.clone();
        for (path, text) in string_fields(&mut service) {
            parse(text).map_err(|why| format!("Bad format '{text}' in Service{path}: {why}"))?;
        }
        let regexp = match query.template.regexp.as_str() {
            "" => None,
            // Go's regexp is RE2; the `regex` crate implements the same syntax and linear-time guarantee.
            text => Some(Regex::new(text).map_err(|err| format!("Bad Regexp: {}", first_line(&err.to_string())))?),
        };
        let compiled = CompiledTemplate { query: query.clone(), regexp };
        compiled.render(&query.name, &RenderContext::default())?;
        Ok(compiled)
    }

    /// The query for the name asked, every service string rendered.
    pub fn render(&self, name: &str, context: &RenderContext) -> Result<PreparedQuery, String> {
        let mut query = self.query.clone();
        let matches: Vec<String> = match &self.regexp {
            Some(regexp) => regexp.captures(name).map_or_else(Vec::new, |caps| {
                caps.iter().map(|group| group.map_or_else(String::new, |m| m.as_str().to_owned())).collect()
            }),
            None => Vec::new(),
        };
        let suffix = name.strip_prefix(query.name.as_str()).unwrap_or(name);
        let (full, prefix) = (name, self.query.name.as_str());
        for (path, text) in string_fields(&mut query.service) {
            let parts = parse(text).map_err(|why| format!("Bad format '{text}' in Service{path}: {why}"))?;
            let mut out = String::with_capacity(text.len());
            for part in parts {
                match part {
                    Part::Literal(literal) => out.push_str(&literal),
                    Part::NameFull => out.push_str(full),
                    Part::NamePrefix => out.push_str(prefix),
                    Part::NameSuffix => out.push_str(suffix),
                    Part::AgentSegment => out.push_str(&context.segment),
                    Part::Match(group) => {
                        let found = usize::try_from(group).ok().and_then(|group| matches.get(group));
                        out.push_str(found.map_or("", String::as_str));
                    }
                }
            }
            *text = out;
        }
        if self.query.template.remove_empty_tags {
            query.service.tags.retain(|tag| !tag.is_empty());
        }
        Ok(query)
    }
}

fn first_line(text: &str) -> &str {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or(text).trim()
}

/// Every string of a `Service` block with its path as Consul names it (`.Service`, `.Tags[0]`, `.NodeMeta[key]`).
fn string_fields(service: &mut ServiceQuery) -> Vec<(String, &mut String)> {
    let mut fields = vec![(".Service".to_owned(), &mut service.service)];
    for (i, dc) in service.failover.datacenters.iter_mut().enumerate() {
        fields.push((format!(".Failover.Datacenters[{i}]"), dc));
    }
    for (i, dc) in service.failover.targets.iter_mut().enumerate() {
        fields.push((format!(".Failover.Targets[{i}].Datacenter"), dc));
    }
    for (i, id) in service.ignore_check_ids.iter_mut().enumerate() {
        fields.push((format!(".IgnoreCheckIDs[{i}]"), id));
    }
    fields.push((".Near".to_owned(), &mut service.near));
    for (i, tag) in service.tags.iter_mut().enumerate() {
        fields.push((format!(".Tags[{i}]"), tag));
    }
    for (key, value) in service.node_meta.iter_mut() {
        fields.push((format!(".NodeMeta[{key}]"), value));
    }
    for (key, value) in service.service_meta.iter_mut() {
        fields.push((format!(".ServiceMeta[{key}]"), value));
    }
    fields
}

/// Splits `text` into literals and interpolations.
fn parse(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let Some(close) = open.find('}') else {
                return Err("expected \"}\" but found end of input".into());
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(expression(open[..close].trim())?);
            rest = &open[close + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

fn expression(expr: &str) -> Result<Part, String> {
    match expr {
        "name.full" => return Ok(Part::NameFull),
        "name.prefix" => return Ok(Part::NamePrefix),
        "name.suffix" => return Ok(Part::NameSuffix),
        "agent.segment" => return Ok(Part::AgentSegment),
        "" => return Err("expected expression".into()),
        _ => {}
    }
    if let Some(args) = expr.strip_prefix("match").map(str::trim_start).and_then(|s| s.strip_prefix('(')) {
        let Some(arg) = args.strip_suffix(')') else { return Err(format!("expected \")\" in {expr:?}")) };
        return arg
            .trim()
            .parse::<i64>()
            .map(Part::Match)
            .map_err(|_| format!("match: argument 1 should be type int, got {:?}", arg.trim()));
    }
    if expr.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
        return Err(format!("unknown variable accessed: {expr}"));
    }
    Err(format!(
        "unsupported expression {expr:?} (roster renders name.full, name.prefix, name.suffix, agent.segment and match(N))"
    ))
}
