//! supd's nftables table over netlink (NETLINK_NETFILTER), without the nft
//! binary or a GPL library: every change is one batch, which the kernel
//! applies as one transaction. The batch adds the table, deletes it and
//! builds it again, so whatever a killed supd left is replaced whole and
//! nothing of any other table is touched.

use super::firewall::{Action, Chain, Family, Hook, Match, Rule, Subnet, TABLE};
use super::NetError;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::net::IpAddr;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;

// Attribute numbers from linux/netfilter/nf_tables.h.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

const NF_ACCEPT: u32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
/// libnftnl's comment tag in rule user data, which `nft list` shows.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
const IFNAMSIZ: usize = 16;

/// Replaces supd's table with `chains` and `rules`, or removes it when
/// `rules` is empty. One transaction: on any error nothing changed.
pub fn replace_table(chains: &[Chain], rules: &[Rule]) -> Result<(), NetError> {
    let mut batch = Batch::default();
    batch.message(NFT_MSG_NEWTABLE, NLM_F_CREATE, |m| {
        m.string(NFTA_TABLE_NAME, TABLE)
    });
    batch.message(NFT_MSG_DELTABLE, 0, |m| m.string(NFTA_TABLE_NAME, TABLE));
    if !rules.is_empty() {
        batch.message(NFT_MSG_NEWTABLE, NLM_F_CREATE, |m| {
            m.string(NFTA_TABLE_NAME, TABLE)
        });
        for chain in chains {
            batch.message(NFT_MSG_NEWCHAIN, NLM_F_CREATE, |m| encode_chain(m, chain));
        }
        for rule in rules {
            batch.message(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |m| {
                encode_rule(m, rule)
            });
        }
    }
    batch.send()
}

fn encode_chain(m: &mut Attributes, chain: &Chain) {
    m.string(NFTA_CHAIN_TABLE, TABLE);
    m.string(NFTA_CHAIN_NAME, chain.name);
    if let Some((hook, priority)) = chain.hook {
        let number: u32 = match hook {
            Hook::Prerouting => 0,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        };
        m.nested(NFTA_CHAIN_HOOK, |h| {
            h.be32(NFTA_HOOK_HOOKNUM, number);
            h.be32(NFTA_HOOK_PRIORITY, priority as u32);
        });
        m.be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
        m.string(NFTA_CHAIN_TYPE, "nat");
    }
}

fn encode_rule(m: &mut Attributes, rule: &Rule) {
    m.string(NFTA_RULE_TABLE, TABLE);
    m.string(NFTA_RULE_CHAIN, rule.chain);
    m.nested(NFTA_RULE_EXPRESSIONS, |list| {
        for matching in &rule.matches {
            encode_match(list, matching);
        }
        encode_action(list, &rule.action);
    });
    let comment = truncated_comment(&rule.comment);
    let mut userdata = vec![NFTNL_UDATA_RULE_COMMENT, comment.len() as u8 + 1];
    userdata.extend_from_slice(comment.as_bytes());
    userdata.push(0);
    m.bytes(NFTA_RULE_USERDATA, &userdata);
}

fn truncated_comment(comment: &str) -> &str {
    let mut end = comment.len().min(127);
    while !comment.is_char_boundary(end) {
        end -= 1;
    }
    &comment[..end]
}

/// Expressions by name, each with its NFTA_*_ attributes.
mod expr {
    pub const META_DREG: u16 = 1;
    pub const META_KEY: u16 = 2;
    pub const META_OIFNAME: u32 = 7;
    pub const META_NFPROTO: u32 = 15;
    pub const META_L4PROTO: u32 = 16;
    pub const CMP_SREG: u16 = 1;
    pub const CMP_OP: u16 = 2;
    pub const CMP_DATA: u16 = 3;
    pub const CMP_EQ: u32 = 0;
    pub const CMP_NEQ: u32 = 1;
    pub const PAYLOAD_DREG: u16 = 1;
    pub const PAYLOAD_BASE: u16 = 2;
    pub const PAYLOAD_OFFSET: u16 = 3;
    pub const PAYLOAD_LEN: u16 = 4;
    pub const PAYLOAD_NETWORK: u32 = 1;
    pub const PAYLOAD_TRANSPORT: u32 = 2;
    pub const BITWISE_SREG: u16 = 1;
    pub const BITWISE_DREG: u16 = 2;
    pub const BITWISE_LEN: u16 = 3;
    pub const BITWISE_MASK: u16 = 4;
    pub const BITWISE_XOR: u16 = 5;
    pub const RANGE_SREG: u16 = 1;
    pub const RANGE_OP: u16 = 2;
    pub const RANGE_FROM: u16 = 3;
    pub const RANGE_TO: u16 = 4;
    pub const FIB_DREG: u16 = 1;
    pub const FIB_RESULT: u16 = 2;
    pub const FIB_FLAGS: u16 = 3;
    pub const FIB_RESULT_ADDRTYPE: u32 = 3;
    pub const FIB_F_DADDR: u32 = 1 << 1;
    /// RTN_LOCAL from linux/rtnetlink.h.
    pub const RTN_LOCAL: u32 = 2;
    pub const CT_DREG: u16 = 1;
    pub const CT_KEY: u16 = 2;
    pub const CT_STATUS: u32 = 2;
    /// IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
    pub const IPS_DST_NAT: u32 = 1 << 5;
    pub const IMMEDIATE_DREG: u16 = 1;
    pub const IMMEDIATE_DATA: u16 = 2;
    pub const NAT_TYPE: u16 = 1;
    pub const NAT_FAMILY: u16 = 2;
    pub const NAT_REG_ADDR_MIN: u16 = 3;
    pub const NAT_REG_PROTO_MIN: u16 = 5;
    pub const NAT_DNAT: u32 = 1;
}

fn expression(list: &mut Attributes, name: &str, data: impl FnOnce(&mut Attributes)) {
    list.nested(NFTA_LIST_ELEM, |element| {
        element.string(NFTA_EXPR_NAME, name);
        element.nested(NFTA_EXPR_DATA, data);
    });
}

fn load_meta(list: &mut Attributes, key: u32) {
    expression(list, "meta", |m| {
        m.be32(expr::META_DREG, NFT_REG_1);
        m.be32(expr::META_KEY, key);
    });
}

fn load_payload(list: &mut Attributes, base: u32, offset: u32, len: u32) {
    expression(list, "payload", |m| {
        m.be32(expr::PAYLOAD_DREG, NFT_REG_1);
        m.be32(expr::PAYLOAD_BASE, base);
        m.be32(expr::PAYLOAD_OFFSET, offset);
        m.be32(expr::PAYLOAD_LEN, len);
    });
}

fn compare(list: &mut Attributes, op: u32, value: &[u8]) {
    expression(list, "cmp", |m| {
        m.be32(expr::CMP_SREG, NFT_REG_1);
        m.be32(expr::CMP_OP, op);
        m.nested(expr::CMP_DATA, |d| d.bytes(NFTA_DATA_VALUE, value));
    });
}

fn mask(list: &mut Attributes, mask: &[u8]) {
    expression(list, "bitwise", |m| {
        m.be32(expr::BITWISE_SREG, NFT_REG_1);
        m.be32(expr::BITWISE_DREG, NFT_REG_1);
        m.be32(expr::BITWISE_LEN, mask.len() as u32);
        m.nested(expr::BITWISE_MASK, |d| d.bytes(NFTA_DATA_VALUE, mask));
        m.nested(expr::BITWISE_XOR, |d| {
            d.bytes(NFTA_DATA_VALUE, &vec![0; mask.len()])
        });
    });
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    }
}

fn encode_match(list: &mut Attributes, matching: &Match) {
    use expr::*;
    match matching {
        Match::Family(family) => {
            load_meta(list, META_NFPROTO);
            let proto = match family {
                Family::V4 => NFPROTO_IPV4,
                Family::V6 => NFPROTO_IPV6,
            };
            compare(list, CMP_EQ, &[proto]);
        }
        Match::Protocol(protocol) => {
            load_meta(list, META_L4PROTO);
            compare(list, CMP_EQ, &[protocol.number()]);
        }
        Match::OutInterface { name, equal } => {
            load_meta(list, META_OIFNAME);
            let mut padded = name.as_bytes().to_vec();
            padded.resize(IFNAMSIZ, 0);
            compare(list, if *equal { CMP_EQ } else { CMP_NEQ }, &padded);
        }
        Match::Source(subnet) => {
            let (offset, network, prefix_mask) = match subnet {
                Subnet::V4(net) => (
                    12,
                    net.network().octets().to_vec(),
                    net.mask().to_be_bytes().to_vec(),
                ),
                Subnet::V6(net) => (
                    8,
                    net.network().octets().to_vec(),
                    net.mask().to_be_bytes().to_vec(),
                ),
            };
            load_payload(list, PAYLOAD_NETWORK, offset, network.len() as u32);
            if prefix_mask.iter().any(|b| *b != 0xff) {
                mask(list, &prefix_mask);
            }
            compare(list, CMP_EQ, &network);
        }
        Match::Destination(ip) => {
            let offset = if ip.is_ipv4() { 16 } else { 24 };
            let bytes = ip_bytes(*ip);
            load_payload(list, PAYLOAD_NETWORK, offset, bytes.len() as u32);
            compare(list, CMP_EQ, &bytes);
        }
        Match::DestinationPorts(first, last) => {
            load_payload(list, PAYLOAD_TRANSPORT, 2, 2);
            if first == last {
                compare(list, CMP_EQ, &first.to_be_bytes());
            } else {
                expression(list, "range", |m| {
                    m.be32(RANGE_SREG, NFT_REG_1);
                    m.be32(RANGE_OP, CMP_EQ);
                    m.nested(RANGE_FROM, |d| {
                        d.bytes(NFTA_DATA_VALUE, &first.to_be_bytes())
                    });
                    m.nested(RANGE_TO, |d| d.bytes(NFTA_DATA_VALUE, &last.to_be_bytes()));
                });
            }
        }
        Match::DestinationLocal => {
            expression(list, "fib", |m| {
                m.be32(FIB_DREG, NFT_REG_1);
                m.be32(FIB_RESULT, FIB_RESULT_ADDRTYPE);
                m.be32(FIB_FLAGS, FIB_F_DADDR);
            });
            // The kernel stores the address type in host byte order.
            compare(list, CMP_EQ, &RTN_LOCAL.to_ne_bytes());
        }
        Match::DestinationTranslated => {
            expression(list, "ct", |m| {
                m.be32(CT_DREG, NFT_REG_1);
                m.be32(CT_KEY, CT_STATUS);
            });
            mask(list, &IPS_DST_NAT.to_ne_bytes());
            compare(list, CMP_NEQ, &0u32.to_ne_bytes());
        }
    }
}

fn encode_action(list: &mut Attributes, action: &Action) {
    use expr::*;
    match action {
        Action::Jump(chain) => expression(list, "immediate", |m| {
            m.be32(IMMEDIATE_DREG, NFT_REG_VERDICT);
            m.nested(IMMEDIATE_DATA, |d| {
                d.nested(NFTA_DATA_VERDICT, |v| {
                    v.be32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                    v.string(NFTA_VERDICT_CHAIN, chain);
                })
            });
        }),
        Action::Masquerade => list.nested(NFTA_LIST_ELEM, |element| {
            element.string(NFTA_EXPR_NAME, "masq");
        }),
        Action::Dnat { to, port } => {
            expression(list, "immediate", |m| {
                m.be32(IMMEDIATE_DREG, NFT_REG_1);
                m.nested(IMMEDIATE_DATA, |d| d.bytes(NFTA_DATA_VALUE, &ip_bytes(*to)));
            });
            if let Some(port) = port {
                expression(list, "immediate", |m| {
                    m.be32(IMMEDIATE_DREG, NFT_REG_2);
                    m.nested(IMMEDIATE_DATA, |d| {
                        d.bytes(NFTA_DATA_VALUE, &port.to_be_bytes())
                    });
                });
            }
            expression(list, "nat", |m| {
                m.be32(NAT_TYPE, NAT_DNAT);
                let family = if to.is_ipv4() {
                    NFPROTO_IPV4
                } else {
                    NFPROTO_IPV6
                };
                m.be32(NAT_FAMILY, u32::from(family));
                m.be32(NAT_REG_ADDR_MIN, NFT_REG_1);
                if port.is_some() {
                    m.be32(NAT_REG_PROTO_MIN, NFT_REG_2);
                }
            });
        }
    }
}

/// Netlink attributes being written into a message buffer.
struct Attributes<'a> {
    buffer: &'a mut Vec<u8>,
}

impl Attributes<'_> {
    fn bytes(&mut self, kind: u16, value: &[u8]) {
        let length = 4 + value.len();
        self.buffer
            .extend_from_slice(&(length as u16).to_ne_bytes());
        self.buffer.extend_from_slice(&kind.to_ne_bytes());
        self.buffer.extend_from_slice(value);
        pad(self.buffer);
    }

    fn string(&mut self, kind: u16, value: &str) {
        let mut text = value.as_bytes().to_vec();
        text.push(0);
        self.bytes(kind, &text);
    }

    fn be32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    fn nested(&mut self, kind: u16, content: impl FnOnce(&mut Attributes)) {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&[0; 4]);
        content(&mut Attributes {
            buffer: self.buffer,
        });
        let length = (self.buffer.len() - start) as u16;
        self.buffer[start..start + 2].copy_from_slice(&length.to_ne_bytes());
        self.buffer[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }
}

fn pad(buffer: &mut Vec<u8>) {
    while buffer.len() % 4 != 0 {
        buffer.push(0);
    }
}

/// The messages of one transaction, between BATCH_BEGIN and BATCH_END.
#[derive(Default)]
struct Batch {
    buffer: Vec<u8>,
    /// Sequence numbers of the messages that expect an acknowledgement.
    expected: Vec<u32>,
    sequence: u32,
}

impl Batch {
    fn header(&mut self, kind: u16, flags: u16, family: u8, resource: u16) -> usize {
        self.sequence += 1;
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&0u32.to_ne_bytes());
        self.buffer.extend_from_slice(&kind.to_ne_bytes());
        self.buffer
            .extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        self.buffer.extend_from_slice(&self.sequence.to_ne_bytes());
        self.buffer.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, resource id (big endian).
        self.buffer.push(family);
        self.buffer.push(0);
        self.buffer.extend_from_slice(&resource.to_be_bytes());
        start
    }

    fn finish(&mut self, start: usize) {
        let length = (self.buffer.len() - start) as u32;
        self.buffer[start..start + 4].copy_from_slice(&length.to_ne_bytes());
    }

    fn message(&mut self, kind: u16, flags: u16, content: impl FnOnce(&mut Attributes)) {
        if self.buffer.is_empty() {
            let start = self.header(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES);
            self.finish(start);
        }
        let start = self.header(
            (NFNL_SUBSYS_NFTABLES << 8) | kind,
            flags | NLM_F_ACK,
            NFPROTO_INET,
            0,
        );
        self.expected.push(self.sequence);
        content(&mut Attributes {
            buffer: &mut self.buffer,
        });
        self.finish(start);
    }

    /// The kernel runs the whole batch inside the send, so every answer is
    /// queued by the time it returns; one per message, errors first found.
    fn send(mut self) -> Result<(), NetError> {
        let start = self.header(NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES);
        self.finish(start);
        let io = |op: &str| {
            let op = op.to_string();
            move |source| NetError::Netlink {
                op: format!("nftables {op}"),
                source,
            }
        };
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| unavailable(e, io("open")))?;
        socket.bind_auto().map_err(io("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connect"))?;
        // Acknowledgements without a copy of each request.
        socket.set_cap_ack(true).map_err(io("cap_ack"))?;
        socket.set_ext_ack(true).map_err(io("ext_ack"))?;
        socket.send(&self.buffer, 0).map_err(io("send"))?;
        socket.set_non_blocking(true).map_err(io("non-blocking"))?;
        let mut acknowledged = 0;
        let mut first_error = None;
        while acknowledged < self.expected.len() {
            let bytes = match socket.recv_from_full() {
                Ok((bytes, _)) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(io("receive")(e)),
            };
            for (sequence, errno) in acknowledgements(&bytes) {
                if self.expected.contains(&sequence) {
                    acknowledged += 1;
                    if errno != 0 && first_error.is_none() {
                        first_error = Some(NetError::Kernel {
                            op: format!("nftables table inet {TABLE} (message {sequence})"),
                            errno,
                        });
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None if acknowledged < self.expected.len() => Err(NetError::Other(format!(
                "nftables: the kernel acknowledged {acknowledged} of {} messages",
                self.expected.len()
            ))),
            None => Ok(()),
        }
    }
}

/// A kernel without nf_tables cannot open the socket's protocol.
fn unavailable(error: std::io::Error, io: impl FnOnce(std::io::Error) -> NetError) -> NetError {
    match error.raw_os_error() {
        Some(libc::EPROTONOSUPPORT) => NetError::Other(
            "nftables: this kernel has no nfnetlink (CONFIG_NF_TABLES); NAT and published ports need it".into(),
        ),
        _ => io(error),
    }
}

/// (sequence, errno) of every NLMSG_ERROR in a datagram (errno 0: an ack).
fn acknowledgements(bytes: &[u8]) -> Vec<(u32, i32)> {
    let mut found = Vec::new();
    let mut offset = 0;
    while offset + 20 <= bytes.len() {
        let word = |at: usize| {
            let mut raw = [0u8; 4];
            raw.copy_from_slice(&bytes[offset + at..offset + at + 4]);
            raw
        };
        let length = u32::from_ne_bytes(word(0)) as usize;
        let kind = u16::from_ne_bytes([bytes[offset + 4], bytes[offset + 5]]);
        let sequence = u32::from_ne_bytes(word(8));
        if kind == NLMSG_ERROR {
            found.push((sequence, -i32::from_ne_bytes(word(16))));
        }
        if length < 16 {
            break;
        }
        offset += (length + 3) & !3;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_sized() {
        let mut buffer = Vec::new();
        let mut m = Attributes {
            buffer: &mut buffer,
        };
        m.nested(4, |n| n.string(1, "ab"));
        // nest header 4 + attribute header 4 + "ab\0" padded to 4.
        assert_eq!(buffer.len(), 12);
        assert_eq!(u16::from_ne_bytes([buffer[0], buffer[1]]), 12);
        assert_eq!(u16::from_ne_bytes([buffer[2], buffer[3]]), 4 | NLA_F_NESTED);
        assert_eq!(u16::from_ne_bytes([buffer[4], buffer[5]]), 7);
    }

    #[test]
    fn acknowledgements_are_read_from_a_datagram() {
        let mut datagram = Vec::new();
        for (sequence, error) in [(3u32, 0i32), (4, -libc::ENOENT)] {
            datagram.extend_from_slice(&36u32.to_ne_bytes());
            datagram.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            datagram.extend_from_slice(&0u16.to_ne_bytes());
            datagram.extend_from_slice(&sequence.to_ne_bytes());
            datagram.extend_from_slice(&0u32.to_ne_bytes());
            datagram.extend_from_slice(&error.to_ne_bytes());
            datagram.extend_from_slice(&[0; 16]);
        }
        assert_eq!(acknowledgements(&datagram), [(3, 0), (4, libc::ENOENT)]);
    }
}
