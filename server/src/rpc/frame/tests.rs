//! Frame encoding round trips and version checks.

use super::*;

#[tokio::test]
async fn frame_round_trips_and_rejects_other_versions() {
    let mut buf = Vec::new();
    write_frame(&mut buf, 7, b"hello").await.unwrap();
    let got = read_frame(&mut buf.as_slice()).await.unwrap();
    assert_eq!(got, Some((7, b"hello".to_vec())));

    buf[4] = WIRE_VERSION + 1;
    assert!(read_frame(&mut buf.as_slice()).await.is_err());
    assert_eq!(read_frame(&mut [].as_slice()).await.unwrap(), None);
}
