//! Just enough of the DNS wire format to recognise a plain one-question UDP query and to answer it from
//! pre-encoded records, without building hickory's message model.
//!
//! The recogniser is deliberately strict: anything unusual (a compressed or oversized name, a class other
//! than IN, more than one question, records other than one OPT, EDNS versions above 0, trailing bytes, a set
//! TC bit) is declined, and the full hickory path, which knows how to reject or answer it, takes over.

/// The fixed DNS header length.
pub(crate) const HEADER_LEN: usize = 12;
/// RFC 1035 §2.3.4: a name is at most 255 octets on the wire.
const MAX_NAME_LEN: usize = 255;
/// The OPT pseudo-record type (RFC 6891).
const TYPE_OPT: u16 = 41;
/// Class IN.
const CLASS_IN: u16 = 1;

/// Header flag bits, in the 16-bit flags word.
const FLAG_QR: u16 = 0x8000;
const FLAG_OPCODE: u16 = 0x7800;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_CD: u16 = 0x0010;

/// A query the fast path can answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PlainQuery {
    /// The message id, echoed.
    pub(crate) id: u16,
    /// The request's flags word; RD and CD are echoed.
    pub(crate) flags: u16,
    /// The question section as sent (name, type, class), copied into the response.
    pub(crate) question_end: usize,
    /// The client's EDNS0 UDP payload size, when it sent an OPT record.
    pub(crate) edns_payload: Option<u16>,
}

/// Recognises a plain query in `packet`, writing its cache key (the lower-cased wire name and the type) to `key`.
pub(crate) fn parse_query(packet: &[u8], key: &mut Vec<u8>) -> Option<PlainQuery> {
    key.clear();
    let header = packet.get(..HEADER_LEN)?;
    let word = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let (id, flags) = (word(0), word(2));
    let (questions, answers, authorities, additionals) = (word(4), word(6), word(8), word(10));
    if flags & (FLAG_QR | FLAG_OPCODE | FLAG_TC) != 0 || questions != 1 || answers != 0 || authorities != 0 {
        return None;
    }
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*packet.get(at)?);
        // Compression pointers and extended label types have no business in a first question.
        if len & 0xC0 != 0 {
            return None;
        }
        let label = packet.get(at + 1..at + 1 + len)?;
        key.push(len as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
        at += 1 + len;
        if key.len() > MAX_NAME_LEN {
            return None;
        }
        if len == 0 {
            break;
        }
    }
    let fixed = packet.get(at..at + 4)?;
    if u16::from_be_bytes([fixed[2], fixed[3]]) != CLASS_IN {
        return None;
    }
    key.extend_from_slice(&fixed[..2]);
    let question_end = at + 4;
    let edns_payload = match additionals {
        0 => None,
        1 => Some(parse_opt(packet.get(question_end..)?)?),
        _ => return None,
    };
    if edns_payload.is_none() && packet.len() != question_end {
        return None;
    }
    Some(PlainQuery { id, flags, question_end, edns_payload })
}

/// The payload size of an OPT record that is the whole of `rest`, or `None` if it is anything else. A size below 512 is
/// read as 512 (RFC 6891 §6.2.5), as hickory's parser reads it, so both paths size an answer alike.
fn parse_opt(rest: &[u8]) -> Option<u16> {
    // root name (1), type (2), class = payload (2), extended rcode (1), version (1), flags (2), rdlength (2)
    let fixed = rest.get(..11)?;
    let word = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
    if fixed[0] != 0 || word(1) != TYPE_OPT || fixed[6] != 0 {
        return None;
    }
    let rdlength = usize::from(word(9));
    (rest.len() == 11 + rdlength).then(|| word(3).max(crate::handler::UDP_MIN_PAYLOAD))
}

/// The flags word of a response to a query with `request_flags`, as hickory's builder sets it for our answers:
/// QR, AA, RD and CD echoed, RA when recursors are configured, and the response code.
pub(crate) fn response_flags(request_flags: u16, recursion_available: bool, response_code: u8) -> u16 {
    let mut flags = FLAG_QR | FLAG_AA | (request_flags & (FLAG_RD | FLAG_CD)) | u16::from(response_code & 0x0F);
    if recursion_available {
        flags |= FLAG_RA;
    }
    flags
}

/// Our OPT record, advertising `payload` (RFC 6891 §6.1.1), version 0, no flags, no options.
pub(crate) fn opt_record(payload: u16) -> [u8; 11] {
    let [high, low] = TYPE_OPT.to_be_bytes();
    let [payload_high, payload_low] = payload.to_be_bytes();
    [0, high, low, payload_high, payload_low, 0, 0, 0, 0, 0, 0]
}

/// A FORMERR response to a request whose header is readable but whose body is not: the id, opcode and RD echoed,
/// no sections, so the client stops waiting at once. `None` when there is no header or it is itself a response.
pub(crate) fn format_error(packet: &[u8]) -> Option<[u8; HEADER_LEN]> {
    let header = packet.get(..HEADER_LEN)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    if flags & FLAG_QR != 0 {
        return None;
    }
    let response = FLAG_QR | (flags & (FLAG_OPCODE | FLAG_RD | FLAG_CD)) | 1;
    let mut reply = [0u8; HEADER_LEN];
    reply[..2].copy_from_slice(&header[..2]);
    reply[2..4].copy_from_slice(&response.to_be_bytes());
    Some(reply)
}

#[cfg(test)]
mod tests;
