//! The event index scheme.

use super::uuid_index;

#[test]
fn the_index_is_the_uuid_halves_xored_and_zero_for_nothing() {
    assert_eq!(uuid_index("00000000-0000-0001-0000-000000000003"), 2);
    assert_eq!(uuid_index("not a uuid"), 0);
}
