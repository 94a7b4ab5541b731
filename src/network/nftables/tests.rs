//! Encoding checked byte for byte, and batches applied by the real kernel in
//! a private network namespace (never the host's ruleset).

use super::batch::{Batch, Hook};
use super::expr::{ifname, ip_in, CmpOp, Expr, MetaKey, REG_1};
use super::msg::Msg;
use super::socket::{classify, parse_acks};
use super::NftError;

#[test]
fn message_head_and_padded_string() {
    let mut m = Msg::new(0x0a00, 0x405, 7, 1, 0);
    m.put_str(1, "t");
    let want: Vec<u8> = vec![
        28, 0, 0, 0, // length
        0, 0x0a, 0x05, 0x04, // NFT_MSG_NEWTABLE; REQUEST|ACK|CREATE
        7, 0, 0, 0, 0, 0, 0, 0, // seq, port id
        1, 0, 0, 0, // nfgenmsg: inet, version 0, res_id 0
        6, 0, 1, 0, b't', 0, 0, 0, // NFTA_TABLE_NAME "t\0", padded to 4
    ];
    assert_eq!(m.finish(), want);
}

#[test]
fn nested_attributes_carry_their_length_and_flag() {
    let mut m = Msg::new(0, 0, 0, 0, 0);
    m.nest(4);
    m.put_u32(1, 3);
    m.put_u32(2, (-100i32) as u32);
    m.end();
    let b = m.finish();
    let attr = &b[20..];
    assert_eq!(&attr[..4], &[20, 0, 4, 0x80]); // len 20, NFTA_CHAIN_HOOK | NESTED
    assert_eq!(&attr[4..12], &[8, 0, 1, 0, 0, 0, 0, 3]); // big-endian hook number
    assert_eq!(&attr[12..20], &[8, 0, 2, 0, 0xff, 0xff, 0xff, 0x9c]); // -100
}

#[test]
fn batch_is_framed_by_begin_and_end() {
    let mut b = Batch::new();
    b.add_table("coracle");
    b.del_table("coracle");
    let bytes = b.bytes();
    // BATCH_BEGIN: type 0x10, res_id = NFNL_SUBSYS_NFTABLES (10) big-endian.
    assert_eq!(&bytes[4..6], &0x10u16.to_ne_bytes());
    assert_eq!(&bytes[16..20], &[0, 0, 0, 10]);
    let end = &bytes[bytes.len() - 20..];
    assert_eq!(&end[4..6], &0x11u16.to_ne_bytes());
    assert_eq!(b.len(), 2);
    assert_eq!(b.describe(2), Some("delete table coracle"));
}

#[test]
fn subnet_match_masks_the_address() {
    let e = ip_in(12, [10, 1, 2, 3], 16);
    match &e[1] {
        Expr::Bitwise { mask, .. } => assert_eq!(mask, &vec![255, 255, 0, 0]),
        other => panic!("{other:?}"),
    }
    match &e[2] {
        Expr::Cmp { data, op, .. } => {
            assert_eq!(data, &vec![10, 1, 0, 0]);
            assert!(matches!(op, CmpOp::Eq));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ifname("br0").len(), 16);
    let _ = (Hook::Forward, MetaKey::OifName, REG_1);
}

#[test]
fn acks_and_errors_are_parsed_by_sequence() {
    // Two NLMSG_ERROR messages: seq 3 acked, seq 4 refused with -ENOENT.
    let mut d = Vec::new();
    for (seq, err) in [(3u32, 0i32), (4, -2)] {
        d.extend_from_slice(&36u32.to_ne_bytes());
        d.extend_from_slice(&2u16.to_ne_bytes());
        d.extend_from_slice(&0u16.to_ne_bytes());
        d.extend_from_slice(&seq.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&err.to_ne_bytes());
        d.extend_from_slice(&[0u8; 8]);
        d.extend_from_slice(&seq.to_ne_bytes());
        d.extend_from_slice(&[0u8; 4]);
    }
    assert_eq!(parse_acks(&d), vec![(3, 0), (4, 2)]);
    assert!(parse_acks(&d[..10]).is_empty());
}

#[test]
fn missing_nf_tables_is_unavailable_other_refusals_name_the_message() {
    let mut b = Batch::new();
    b.add_table("coracle");
    b.add_rule("coracle", "forward", &[]);
    // The batch itself, or its first message, refused as unknown: no nf_tables.
    assert!(matches!(
        classify(&b, 0, libc::EOPNOTSUPP),
        NftError::Unavailable(_)
    ));
    assert!(matches!(
        classify(&b, 1, libc::ENOENT),
        NftError::Unavailable(_)
    ));
    assert_eq!(
        classify(&b, 2, libc::ENOENT),
        NftError::Kernel {
            errno: libc::ENOENT,
            what: "add rule to chain forward".into()
        }
    );
    assert!(matches!(
        classify(&b, 1, libc::EINVAL),
        NftError::Kernel { .. }
    ));
}
