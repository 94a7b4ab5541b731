//! An nfnetlink transaction: `NFNL_MSG_BATCH_BEGIN`, nf_tables messages,
//! `NFNL_MSG_BATCH_END`. The kernel applies all of it or none of it.
//! Every inner message asks for an ack; `what` remembers each one's
//! description by sequence number so a kernel error names its culprit.

use super::expr::{put_data, Expr};
use super::msg::{Msg, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};

/// `NFPROTO_INET`: tables that see IPv4 and IPv6.
pub const FAMILY_INET: u8 = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NEWTABLE: u16 = 0;
const DELTABLE: u16 = 2;
const NEWCHAIN: u16 = 3;
const NEWRULE: u16 = 6;
const NEWSET: u16 = 9;
const NEWSETELEM: u16 = 12;
const DELSETELEM: u16 = 14;

/// Netfilter hooks (`enum nf_inet_hooks`).
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    Prerouting = 0,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

/// A base chain's kind.
#[derive(Clone, Copy, Debug)]
pub enum ChainType {
    Filter,
    Nat,
}

/// A base chain (always policy accept: our chains only drop or rewrite
/// what they match, the host's own tables decide the rest).
pub struct Chain<'a> {
    pub name: &'a str,
    pub kind: ChainType,
    pub hook: Hook,
    pub priority: i32,
}

/// A set or map. Key and data types are nft's datatype ids (concatenations
/// packed 6 bits each, as nft does) so `nft list` prints them by name;
/// `fields` are the byte lengths of the key's concatenated parts.
pub struct Set<'a> {
    pub name: &'a str,
    pub id: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub fields: &'a [u32],
    /// `Some((type, len))` makes it a map.
    pub data: Option<(u32, u32)>,
}

/// nft datatype ids.
pub const TYPE_IPADDR: u32 = 7;
pub const TYPE_INET_PROTOCOL: u32 = 12;
pub const TYPE_INET_SERVICE: u32 = 13;
pub const TYPE_IFNAME: u32 = 41;

/// A concatenation's datatype id, as nft packs it.
pub fn concat_type(parts: &[u32]) -> u32 {
    parts.iter().fold(0, |acc, t| (acc << 6) | t)
}

/// A set element: its key and (for a map) its data, as register bytes.
pub type Elem = (Vec<u8>, Vec<u8>);

/// Elements per NEWSETELEM message, keeping each message well below a page
/// multiple the kernel copies at once.
const ELEMS_PER_MSG: usize = 256;

/// A batch being built.
pub struct Batch {
    msgs: Vec<u8>,
    seq: u32,
    what: Vec<(u32, String)>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            msgs: Vec::new(),
            seq: 1,
            what: Vec::new(),
        }
    }

    fn msg(&mut self, kind: u16, flags: u16, what: String) -> Msg {
        let seq = self.next_seq();
        self.what.push((seq, what));
        Msg::new(
            (NFNL_SUBSYS_NFTABLES << 8) | kind,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            FAMILY_INET,
            0,
        )
    }

    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    fn push(&mut self, m: Msg) {
        self.msgs.extend_from_slice(&m.finish());
    }

    /// `add table inet NAME` (no error if it exists).
    pub fn add_table(&mut self, table: &str) {
        let mut m = self.msg(NEWTABLE, NLM_F_CREATE, format!("add table {table}"));
        m.put_str(1, table); // NFTA_TABLE_NAME
        m.put_u32(2, 0); // FLAGS
        self.push(m);
    }

    /// `delete table inet NAME`: with everything in it.
    pub fn del_table(&mut self, table: &str) {
        let mut m = self.msg(DELTABLE, 0, format!("delete table {table}"));
        m.put_str(1, table);
        self.push(m);
    }

    pub fn add_chain(&mut self, table: &str, c: &Chain) {
        let mut m = self.msg(NEWCHAIN, NLM_F_CREATE, format!("add chain {}", c.name));
        m.put_str(1, table); // NFTA_CHAIN_TABLE
        m.put_str(3, c.name); // NAME
        m.nest(4); // HOOK
        m.put_u32(1, c.hook as u32); // NFTA_HOOK_HOOKNUM
        m.put_u32(2, c.priority as u32); // PRIORITY
        m.end();
        m.put_u32(5, 1); // POLICY: NF_ACCEPT
        m.put_str(
            7,
            match c.kind {
                ChainType::Filter => "filter",
                ChainType::Nat => "nat",
            },
        ); // TYPE
        self.push(m);
    }

    pub fn add_set(&mut self, table: &str, s: &Set) {
        let mut m = self.msg(NEWSET, NLM_F_CREATE, format!("add set {}", s.name));
        m.put_str(1, table); // NFTA_SET_TABLE
        m.put_str(2, s.name); // NAME
        let mut flags = 0u32;
        if s.data.is_some() {
            flags |= 0x8; // NFT_SET_MAP
        }
        if s.fields.len() > 1 {
            flags |= 0x80; // NFT_SET_CONCAT
        }
        m.put_u32(3, flags); // FLAGS
        m.put_u32(4, s.key_type); // KEY_TYPE
        m.put_u32(5, s.key_len); // KEY_LEN
        if let Some((t, l)) = s.data {
            m.put_u32(6, t); // DATA_TYPE
            m.put_u32(7, l); // DATA_LEN
        }
        if s.fields.len() > 1 {
            m.nest(9); // NFTA_SET_DESC
            m.nest(2); // NFTA_SET_DESC_CONCAT
            for f in s.fields {
                m.nest(1); // NFTA_LIST_ELEM
                m.put_u32(1, *f); // NFTA_SET_FIELD_LEN
                m.end();
            }
            m.end();
            m.end();
        }
        m.put_u32(10, s.id); // ID
        self.push(m);
    }

    /// Add elements (key, data) to a set or map made in this batch or before;
    /// for a plain set pass empty data.
    pub fn add_elems(&mut self, table: &str, set: &str, set_id: u32, elems: &[Elem]) {
        self.elems(NEWSETELEM, NLM_F_CREATE, table, set, set_id, elems);
    }

    /// Delete elements (keys; data ignored) from an existing set or map.
    pub fn del_elems(&mut self, table: &str, set: &str, elems: &[Elem]) {
        self.elems(DELSETELEM, 0, table, set, 0, elems);
    }

    fn elems(
        &mut self,
        kind: u16,
        flags: u16,
        table: &str,
        set: &str,
        set_id: u32,
        elems: &[Elem],
    ) {
        for chunk in elems.chunks(ELEMS_PER_MSG) {
            let verb = if kind == NEWSETELEM { "add" } else { "delete" };
            let mut m = self.msg(
                kind,
                flags,
                format!("{verb} {} elements of {set}", chunk.len()),
            );
            m.put_str(1, table); // NFTA_SET_ELEM_LIST_TABLE
            m.put_str(2, set); // SET
            if set_id != 0 {
                m.put_u32(4, set_id); // SET_ID
            }
            m.nest(3); // ELEMENTS
            for (key, data) in chunk {
                m.nest(1); // NFTA_LIST_ELEM
                put_data(&mut m, 1, key); // NFTA_SET_ELEM_KEY
                if !data.is_empty() {
                    put_data(&mut m, 2, data); // NFTA_SET_ELEM_DATA
                }
                m.end();
            }
            m.end();
            self.push(m);
        }
    }

    /// Append a rule to a chain.
    pub fn add_rule(&mut self, table: &str, chain: &str, exprs: &[Expr]) {
        let mut m = self.msg(
            NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!("add rule to chain {chain}"),
        );
        m.put_str(1, table); // NFTA_RULE_TABLE
        m.put_str(2, chain); // CHAIN
        m.nest(4); // EXPRESSIONS
        for e in exprs {
            e.encode(&mut m);
        }
        m.end();
        self.push(m);
    }

    /// Number of acked messages in the batch.
    pub fn len(&self) -> usize {
        self.what.len()
    }

    pub fn is_empty(&self) -> bool {
        self.what.is_empty()
    }

    /// What the message with this sequence number did.
    pub fn describe(&self, seq: u32) -> Option<&str> {
        self.what
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, w)| w.as_str())
    }

    /// Sequence numbers of the acked messages.
    pub fn seqs(&self) -> impl Iterator<Item = u32> + '_ {
        self.what.iter().map(|(s, _)| *s)
    }

    /// The whole transaction as sent: begin, the messages, end.
    pub fn bytes(&self) -> Vec<u8> {
        let begin = Msg::new(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        let end = Msg::new(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        let mut out = begin.finish();
        out.extend_from_slice(&self.msgs);
        out.extend_from_slice(&end.finish());
        out
    }
}
