//! Names in the UI's links: every character but the unreserved ones percent-encoded, one path segment at a time, so a
//! KV key's `/`s stay folder separators while spaces, `%`, `?`, `#` and unicode round-trip.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What stays as it is in a segment: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One name as a single path segment (its `/`s encoded too).
pub(crate) fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// A `/`-separated path (a KV key or prefix) with each segment encoded and the `/`s kept.
pub fn encode_path(path: &str) -> String {
    path.split('/').map(encode_segment).collect::<Vec<_>>().join("/")
}

/// The inverse of both encodings; `None` when the bytes are not UTF-8.
pub(crate) fn decode(raw: &str) -> Option<String> {
    percent_decode_str(raw).decode_utf8().ok().map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    //! Round trips of awkward names.
    use super::*;

    #[test]
    fn keys_round_trip_with_their_slashes() {
        for key in ["plain", "a b/c", "ünï/çødé/", "100%/?q=1#frag", "dir/", "/lead", "+plus&amp"] {
            let encoded = encode_path(key);
            assert!(!encoded.contains([' ', '?', '#', '&', '+']), "{encoded}");
            assert_eq!(decode(&encoded).as_deref(), Some(key));
        }
        assert_eq!(encode_path("a b/c"), "a%20b/c");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
        assert_eq!(decode("%FF"), None);
    }
}
