//! A synchronous rtnetlink client: one socket, one request at a time, each
//! acknowledged before the next. Enough for links, addresses and routes;
//! no runtime, no threads.

use super::NetError;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::net::{IpAddr, Ipv4Addr};

pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

impl Netlink {
    pub fn open() -> Result<Self, NetError> {
        let io = |e| NetError::Netlink {
            op: "open".into(),
            source: e,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(io)?;
        socket.bind_auto().map_err(io)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// Sends one request and collects the replies until the ACK (or the end
    /// of a dump). A kernel error comes back as `NetError::Kernel`.
    fn request(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buffer = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buffer);
        let io = |e| NetError::Netlink {
            op: op.to_string(),
            source: e,
        };
        self.socket.send(&buffer, 0).map_err(io)?;
        let mut replies = Vec::new();
        loop {
            let (bytes, _) = self.socket.recv_from_full().map_err(io)?;
            let mut offset = 0;
            while offset < bytes.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[offset..])
                    .map_err(|e| NetError::Decode {
                        op: op.to_string(),
                        detail: e.to_string(),
                    })?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number != self.sequence {
                    offset += length.max(1);
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies),
                            Some(code) => Err(NetError::Kernel {
                                op: op.to_string(),
                                errno: -code.get(),
                            }),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    _ => {}
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }

    fn ack(&mut self, op: &str, message: RouteNetlinkMessage, flags: u16) -> Result<(), NetError> {
        self.request(op, message, NLM_F_ACK | flags).map(|_| ())
    }

    /// The index of the link called `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        Ok(self.link(name)?.map(|link| link.header.index))
    }

    /// The index and kind (bridge, veth, ...; None for a plain device) of
    /// the link called `name`, if it exists.
    pub fn link_kind(&mut self, name: &str) -> Result<Option<(u32, Option<InfoKind>)>, NetError> {
        Ok(self.link(name)?.map(|link| {
            let kind = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind.clone()),
                    _ => None,
                }),
                _ => None,
            });
            (link.header.index, kind)
        }))
    }

    /// The link called `name` with all its attributes, if it exists.
    pub fn link(&mut self, name: &str) -> Result<Option<LinkMessage>, NetError> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            &format!("get link {name}"),
            RouteNetlinkMessage::GetLink(message),
            NLM_F_ACK,
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })),
            Err(NetError::Kernel { errno, .. }) if errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names of all links in this namespace.
    pub fn link_names(&mut self) -> Result<Vec<String>, NetError> {
        let replies = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(link) => {
                    link.attributes.into_iter().find_map(|a| match a {
                        LinkAttribute::IfName(name) => Some(name),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Creates a link (fails with EEXIST if the name is taken).
    pub fn new_link(&mut self, op: &str, message: LinkMessage) -> Result<(), NetError> {
        self.ack(
            op,
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Changes settings only RTM_NEWLINK carries for an existing link (a
    /// port's bridge options, in IFLA_LINKINFO): RTM_SETLINK ignores them.
    pub fn change_link(
        &mut self,
        op: &str,
        index: u32,
        attributes: Vec<LinkAttribute>,
    ) -> Result<(), NetError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes = attributes;
        self.ack(op, RouteNetlinkMessage::NewLink(message), 0)
    }

    pub fn delete_link(&mut self, index: u32) -> Result<(), NetError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.ack("delete link", RouteNetlinkMessage::DelLink(message), 0)
    }

    /// Changes a link: up, MTU, controller (bridge), name.
    pub fn set_link(
        &mut self,
        index: u32,
        up: bool,
        attributes: Vec<LinkAttribute>,
    ) -> Result<(), NetError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        if up {
            message.header.flags = LinkFlags::Up;
            message.header.change_mask = LinkFlags::Up;
        }
        message.attributes = attributes;
        self.ack("set link", RouteNetlinkMessage::SetLink(message), 0)
    }

    /// Adds an address; one that is already there is fine. IPv6 skips
    /// duplicate address detection: supd hands out the addresses itself,
    /// and a tentative address would not answer for a second or more.
    pub fn add_address(&mut self, index: u32, address: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut message = AddressMessage::default();
        message.header.family = match address {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        message.header.prefix_len = prefix;
        message.header.index = index;
        message.attributes.push(AddressAttribute::Local(address));
        message.attributes.push(AddressAttribute::Address(address));
        if address.is_ipv6() {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match self.ack(
            &format!("add address {address}/{prefix}"),
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(NetError::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(()),
            other => other,
        }
    }

    /// The IPv4 addresses (with prefix) of a link.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, NetError> {
        let mut query = AddressMessage::default();
        query.header.family = AddressFamily::Inet;
        let replies = self.request(
            "list addresses",
            RouteNetlinkMessage::GetAddress(query),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let prefix = a.header.prefix_len;
                    a.attributes.into_iter().find_map(|attr| match attr {
                        AddressAttribute::Local(IpAddr::V4(ip)) => Some((ip, prefix)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// The default route via `gateway`, of its family.
    pub fn add_default_route(&mut self, gateway: IpAddr) -> Result<(), NetError> {
        let mut message = RouteMessage::default();
        message.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        self.ack(
            &format!("add default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}
