//! nf_tables rule expressions and their netlink encoding
//! (`NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }`).
//!
//! Registers: `REG_VERDICT` (0), the 16-byte `REG_1` (1), and the 4-byte
//! `REG32_00 + n` (8..) that concatenated keys and NAT data span.

use super::msg::Msg;

pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;
pub const REG32_00: u32 = 8;

/// `enum nft_meta_keys` values used here.
#[derive(Clone, Copy, Debug)]
pub enum MetaKey {
    IifName = 6,
    OifName = 7,
    NfProto = 15,
    L4Proto = 16,
}

/// `enum nft_payload_bases`.
#[derive(Clone, Copy, Debug)]
pub enum Base {
    Network = 1,
    Transport = 2,
}

/// `enum nft_cmp_ops` used here.
#[derive(Clone, Copy, Debug)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
}

/// `enum nft_ct_keys` used here.
#[derive(Clone, Copy, Debug)]
pub enum CtKey {
    Status = 2,
}

/// Final verdicts of an `immediate` into the verdict register.
#[derive(Clone, Copy, Debug)]
pub enum Verdict {
    Drop,
    Accept,
}

/// `fib daddr type`: the address type of the destination.
pub const FIB_RESULT_ADDRTYPE: u32 = 3;
pub const FIB_F_DADDR: u32 = 2;
/// `RTN_LOCAL`: an address of this host.
pub const RTN_LOCAL: u32 = 2;
/// `IPS_DST_NAT` in `ct status`.
pub const CT_STATUS_DNAT: u32 = 0x20;
/// `NFPROTO_IPV4`.
pub const NFPROTO_IPV4: u8 = 2;

/// One expression of a rule.
#[derive(Clone, Debug)]
pub enum Expr {
    Meta {
        key: MetaKey,
        dreg: u32,
    },
    Payload {
        base: Base,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Cmp {
        op: CmpOp,
        sreg: u32,
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor` over `mask.len()` bytes.
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Immediate(Verdict),
    /// A set (or map, with `dreg`) lookup by name; `set_id` names a set
    /// created in the same batch.
    Lookup {
        set: String,
        set_id: u32,
        sreg: u32,
        dreg: Option<u32>,
        invert: bool,
    },
    /// IPv4 DNAT to the address in `reg_addr` and the port in `reg_proto`.
    Dnat {
        reg_addr: u32,
        reg_proto: u32,
    },
    Masquerade,
    Ct {
        key: CtKey,
        dreg: u32,
    },
    Counter,
    Fib {
        result: u32,
        flags: u32,
        dreg: u32,
    },
}

// Attribute numbers (include/uapi/linux/netfilter/nf_tables.h).
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

/// Write `NFTA_DATA_VALUE` inside a nest of `kind`.
pub fn put_data(m: &mut Msg, kind: u16, value: &[u8]) {
    m.nest(kind);
    m.put(NFTA_DATA_VALUE, value);
    m.end();
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Immediate(_) => "immediate",
            Expr::Lookup { .. } => "lookup",
            Expr::Dnat { .. } => "nat",
            Expr::Masquerade => "masq",
            Expr::Ct { .. } => "ct",
            Expr::Counter => "counter",
            Expr::Fib { .. } => "fib",
        }
    }

    /// Append this expression as one `NFTA_LIST_ELEM`.
    pub fn encode(&self, m: &mut Msg) {
        m.nest(NFTA_LIST_ELEM);
        m.put_str(NFTA_EXPR_NAME, self.name());
        m.nest(NFTA_EXPR_DATA);
        match self {
            Expr::Meta { key, dreg } => {
                m.put_u32(1, *dreg); // NFTA_META_DREG
                m.put_u32(2, *key as u32); // NFTA_META_KEY
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                m.put_u32(1, *dreg); // NFTA_PAYLOAD_DREG
                m.put_u32(2, *base as u32); // BASE
                m.put_u32(3, *offset); // OFFSET
                m.put_u32(4, *len); // LEN
            }
            Expr::Cmp { op, sreg, data } => {
                m.put_u32(1, *sreg); // NFTA_CMP_SREG
                m.put_u32(2, *op as u32); // OP
                put_data(m, 3, data); // DATA
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                m.put_u32(1, *sreg); // NFTA_BITWISE_SREG
                m.put_u32(2, *dreg); // DREG
                m.put_u32(3, mask.len() as u32); // LEN
                put_data(m, 4, mask); // MASK
                put_data(m, 5, xor); // XOR
            }
            Expr::Immediate(v) => {
                m.put_u32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
                m.nest(2); // NFTA_IMMEDIATE_DATA
                m.nest(NFTA_DATA_VERDICT);
                let code: u32 = match v {
                    Verdict::Drop => 0,
                    Verdict::Accept => 1,
                };
                m.put_u32(NFTA_VERDICT_CODE, code);
                m.end();
                m.end();
            }
            Expr::Lookup {
                set,
                set_id,
                sreg,
                dreg,
                invert,
            } => {
                m.put_str(1, set); // NFTA_LOOKUP_SET
                m.put_u32(2, *sreg); // SREG
                if let Some(d) = dreg {
                    m.put_u32(3, *d); // DREG
                }
                m.put_u32(4, *set_id); // SET_ID
                if *invert {
                    m.put_u32(5, 1); // FLAGS: NFT_LOOKUP_F_INV
                }
            }
            Expr::Dnat {
                reg_addr,
                reg_proto,
            } => {
                m.put_u32(1, 1); // NFTA_NAT_TYPE: NFT_NAT_DNAT
                m.put_u32(2, NFPROTO_IPV4 as u32); // FAMILY
                m.put_u32(3, *reg_addr); // REG_ADDR_MIN
                m.put_u32(4, *reg_addr); // REG_ADDR_MAX
                m.put_u32(5, *reg_proto); // REG_PROTO_MIN
                m.put_u32(6, *reg_proto); // REG_PROTO_MAX
                m.put_u32(7, 0x3); // FLAGS: MAP_IPS | PROTO_SPECIFIED
            }
            Expr::Masquerade => {}
            Expr::Ct { key, dreg } => {
                m.put_u32(1, *dreg); // NFTA_CT_DREG
                m.put_u32(2, *key as u32); // KEY
            }
            Expr::Counter => {
                m.put_u64(1, 0); // NFTA_COUNTER_BYTES
                m.put_u64(2, 0); // PACKETS
            }
            Expr::Fib {
                result,
                flags,
                dreg,
            } => {
                m.put_u32(1, *dreg); // NFTA_FIB_DREG
                m.put_u32(2, *result); // RESULT
                m.put_u32(3, *flags); // FLAGS
            }
        }
        m.end();
        m.end();
    }
}

/// `meta KEY <op> data`: load into `REG_1` and compare.
pub fn meta_cmp(key: MetaKey, op: CmpOp, data: &[u8]) -> [Expr; 2] {
    [
        Expr::Meta { key, dreg: REG_1 },
        Expr::Cmp {
            op,
            sreg: REG_1,
            data: data.to_vec(),
        },
    ]
}

/// An interface name as the 16 bytes (`IFNAMSIZ`) `meta iifname` loads.
pub fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(16, 0);
    v
}

/// `ct KEY & bits != 0`.
pub fn ct_has(key: CtKey, bits: u32) -> [Expr; 3] {
    [
        Expr::Ct { key, dreg: REG_1 },
        Expr::Bitwise {
            sreg: REG_1,
            dreg: REG_1,
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            op: CmpOp::Neq,
            sreg: REG_1,
            data: vec![0; 4],
        },
    ]
}

/// `ip saddr|daddr ADDR/PREFIX` (offset 12 source, 16 destination).
pub fn ip_in(offset: u32, addr: [u8; 4], prefix: u8) -> Vec<Expr> {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    let mask = mask.to_be_bytes();
    let net: Vec<u8> = addr.iter().zip(mask).map(|(a, m)| a & m).collect();
    vec![
        Expr::Payload {
            base: Base::Network,
            offset,
            len: 4,
            dreg: REG_1,
        },
        Expr::Bitwise {
            sreg: REG_1,
            dreg: REG_1,
            mask: mask.to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: REG_1,
            data: net,
        },
    ]
}

/// `fib daddr type local`.
pub fn daddr_is_local() -> [Expr; 2] {
    [
        Expr::Fib {
            result: FIB_RESULT_ADDRTYPE,
            flags: FIB_F_DADDR,
            dreg: REG_1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: REG_1,
            data: RTN_LOCAL.to_ne_bytes().to_vec(),
        },
    ]
}
