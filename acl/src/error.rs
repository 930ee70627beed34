//! The parse/validation error for ACL rules text.

/// A `Result` whose error defaults to [`ParseError`].
pub type Result<T, E = ParseError> = std::result::Result<T, E>;

/// A parse/validation failure of ACL rules text.
///
/// Displays like Consul's errors, `Failed to parse ACL rules: ...`, naming the line (when known,
/// 1-based) and the rule it is about, e.g.
/// `Failed to parse ACL rules: line 3: key_prefix "lb/": invalid policy "reed"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Failed to parse ACL rules: {}", detail(.line, .resource, .message))]
pub struct ParseError {
    /// The 1-based line of the offending text, when known (HCL always; JSON only for syntax errors).
    pub line: Option<usize>,
    /// The rule the error is about, e.g. `key_prefix "lb/"` or `operator`.
    pub resource: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: Option<usize>, resource: Option<String>, message: impl Into<String>) -> ParseError {
        ParseError { line, resource, message: message.into() }
    }
}

fn detail(line: &Option<usize>, resource: &Option<String>, message: &str) -> String {
    let mut out = String::new();
    if let Some(line) = line {
        out.push_str(&format!("line {line}: "));
    }
    if let Some(resource) = resource {
        out.push_str(resource);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}
