//! Unit tests of the trimming search; the handler itself is tested over the wire in `tests/`.

use super::largest_fitting;

#[test]
fn largest_fitting_finds_the_boundary() {
    assert_eq!(largest_fitting(200, |n| n <= 37), 37);
    assert_eq!(largest_fitting(200, |n| n <= 200), 200);
    assert_eq!(largest_fitting(200, |n| n == 0), 0);
    assert_eq!(largest_fitting(0, |_| true), 0);
    assert_eq!(largest_fitting(1, |n| n == 0), 0);
}
