//! Which addresses a link snapshot may connect to: the classification of IP
//! addresses into special-purpose ranges, and the allow list that overrides it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The kind of address an IP is. Everything except [`AddressClass::Public`] is
/// refused by the link fetcher unless allow-listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// A globally reachable unicast address.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`, the
    /// deprecated site-local `fec0::/10`, and local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// A cloud instance metadata service: `169.254.169.254`, `169.254.170.2`
    /// (ECS task metadata), `fd00:ec2::254`, and names such as
    /// `metadata.google.internal`.
    Metadata,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// Carrier-grade NAT shared space, `100.64.0.0/10`.
    CarrierGradeNat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// Anything else that is not globally routable unicast: `240.0.0.0/4`,
    /// benchmarking (`198.18.0.0/15`, `2001:2::/48`), IETF protocol
    /// assignments (`192.0.0.0/24`, `2001::/23`, which holds Teredo), the 6to4
    /// relay anycast, discard-only `100::/64`, IPv4-compatible `::/96`, and
    /// IPv6 outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    /// The class's stable name, as recorded in refusals: `loopback`,
    /// `private`, `link-local`, `metadata`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::Metadata => "metadata",
            Self::Unspecified => "unspecified",
            Self::CarrierGradeNat => "carrier-grade-nat",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Host names of cloud metadata services, refused before any DNS lookup.
pub const METADATA_HOST_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// The class of `address`. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`)
/// addresses are judged by the IPv4 address they carry.
pub fn classify(address: IpAddr) -> AddressClass {
    match address {
        IpAddr::V4(address) => classify_ipv4(address),
        IpAddr::V6(address) => classify_ipv6(address),
    }
}

fn classify_ipv4(address: Ipv4Addr) -> AddressClass {
    let [first, second, third, _] = address.octets();
    let bits = u32::from(address);
    let in_network = |network: [u8; 4], prefix: u32| {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        bits & mask == u32::from(Ipv4Addr::from(network)) & mask
    };
    if address == Ipv4Addr::new(169, 254, 169, 254) || address == Ipv4Addr::new(169, 254, 170, 2) {
        return AddressClass::Metadata;
    }
    match first {
        0 => AddressClass::Unspecified,
        127 => AddressClass::Loopback,
        10 => AddressClass::Private,
        _ if in_network([172, 16, 0, 0], 12) || in_network([192, 168, 0, 0], 16) => {
            AddressClass::Private
        }
        169 if second == 254 => AddressClass::LinkLocal,
        _ if in_network([100, 64, 0, 0], 10) => AddressClass::CarrierGradeNat,
        224..=239 => AddressClass::Multicast,
        255 if address == Ipv4Addr::BROADCAST => AddressClass::Broadcast,
        240..=255 => AddressClass::Reserved,
        192 if second == 0 && third == 2 => AddressClass::Documentation,
        198 if second == 51 && third == 100 => AddressClass::Documentation,
        203 if second == 0 && third == 113 => AddressClass::Documentation,
        _ if in_network([198, 18, 0, 0], 15) => AddressClass::Reserved,
        192 if second == 0 && third == 0 => AddressClass::Reserved,
        192 if second == 88 && third == 99 => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_ipv6(address: Ipv6Addr) -> AddressClass {
    let segments = address.segments();
    // The low 32 bits; the mask makes the narrowing cast lossless.
    let embedded_ipv4 = || Ipv4Addr::from((u128::from(address) & 0xffff_ffff) as u32);
    if address == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return AddressClass::Metadata;
    }
    if address.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if address.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(mapped) = address.to_ipv4_mapped() {
        return classify_ipv4(mapped);
    }
    // IPv4-compatible ::a.b.c.d (deprecated): never public, but report the
    // class of the carried address when it has one (::127.0.0.1 is loopback).
    if segments[..6] == [0; 6] {
        return match classify_ipv4(embedded_ipv4()) {
            AddressClass::Public => AddressClass::Reserved,
            class => class,
        };
    }
    // Well-known NAT64 prefix: the gateway connects to the carried address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_ipv4(embedded_ipv4());
    }
    // Local-use NAT64 (RFC 8215) translates inside one network.
    if segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1 {
        return match classify_ipv4(embedded_ipv4()) {
            AddressClass::Public => AddressClass::Private,
            class => class,
        };
    }
    match segments[0] {
        0xfc00..=0xfdff => AddressClass::Private,
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xfec0..=0xfeff => AddressClass::Private,
        0xff00..=0xffff => AddressClass::Multicast,
        0x2001 if segments[1] == 0x0db8 => AddressClass::Documentation,
        0x3fff if segments[1] <= 0x0fff => AddressClass::Documentation,
        0x2002 => {
            // 6to4: the relay forwards to the carried IPv4 address.
            let carried = Ipv4Addr::from((u32::from(segments[1]) << 16) | u32::from(segments[2]));
            classify_ipv4(carried)
        }
        0x2001 if segments[1] <= 0x01ff => AddressClass::Reserved,
        0x0100 if segments[1..4] == [0, 0, 0] => AddressClass::Reserved,
        0x2000..=0x3fff => AddressClass::Public,
        _ => AddressClass::Reserved,
    }
}

/// An IP network written as `address/prefix-length` (or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix_length: u8,
}

/// Why an allow list entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not an allow list entry: {problem}; write an IP address (`10.0.0.5`), a network (`10.0.0.0/8`, `fd00::/8`) or a host name (`intranet.example.com`)")]
pub struct AllowRuleParseError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl IpNetwork {
    /// The network of `address` with the first `prefix_length` bits
    /// significant; `None` if the length is too long for the family.
    pub fn new(address: IpAddr, prefix_length: u8) -> Option<Self> {
        let maximum = if address.is_ipv4() { 32 } else { 128 };
        (prefix_length <= maximum).then_some(Self {
            address,
            prefix_length,
        })
    }

    /// Whether `address` is inside the network. An IPv4-mapped IPv6 address
    /// is also matched against IPv4 networks, and the other way round.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(candidate)) => {
                let mask = mask_u32(self.prefix_length);
                u32::from(network) & mask == u32::from(candidate) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(candidate)) => {
                let mask = mask_u128(self.prefix_length);
                u128::from(network) & mask == u128::from(candidate) & mask
            }
            (IpAddr::V6(network), IpAddr::V4(candidate)) => {
                let mask = mask_u128(self.prefix_length);
                u128::from(network) & mask == u128::from(candidate.to_ipv6_mapped()) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

fn mask_u32(prefix_length: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_length))
        .unwrap_or(0)
}

fn mask_u128(prefix_length: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_length))
        .unwrap_or(0)
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix_length)
    }
}

impl FromStr for IpNetwork {
    type Err = AllowRuleParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |problem| AllowRuleParseError {
            entry: text.to_string(),
            problem,
        };
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address_text = address_text.trim_start_matches('[').trim_end_matches(']');
        let address: IpAddr = address_text
            .parse()
            .map_err(|_| error("it is not an IP address"))?;
        let maximum = if address.is_ipv4() { 32 } else { 128 };
        let prefix_length = match prefix_text {
            None => maximum,
            Some(prefix) => prefix
                .parse::<u8>()
                .map_err(|_| error("the prefix length is not a number"))?,
        };
        Self::new(address, prefix_length)
            .ok_or_else(|| error("the prefix length is longer than the address"))
    }
}

/// One entry of [`crate::FetchPolicy::allow`]: an address or network whose
/// addresses are allowed whatever their class, or a host name whose resolved
/// addresses are all allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    /// Addresses inside this network are allowed.
    Network(IpNetwork),
    /// This host name (lower case, without a trailing dot) is allowed, with
    /// whatever it resolves to.
    Host(String),
}

impl AllowRule {
    /// Whether this rule allows the connection to `address`.
    pub fn allows_address(&self, address: IpAddr) -> bool {
        matches!(self, Self::Network(network) if network.contains(address))
    }

    /// Whether this rule allows the host name `host` (compared without case
    /// and trailing dot).
    pub fn allows_host(&self, host: &str) -> bool {
        matches!(self, Self::Host(allowed) if *allowed == normalize_host(host))
    }
}

impl FromStr for AllowRule {
    type Err = AllowRuleParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AllowRuleParseError {
                entry: text.into(),
                problem: "it is empty",
            });
        }
        let looks_like_address = text.contains(':')
            || text.contains('/')
            || text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'.');
        if looks_like_address {
            return text.parse().map(Self::Network);
        }
        let host = normalize_host(text);
        let host_is_valid = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        });
        if !host_is_valid {
            return Err(AllowRuleParseError {
                entry: text.into(),
                problem: "it is neither an address nor a host name",
            });
        }
        Ok(Self::Host(host))
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(network) => network.fmt(formatter),
            Self::Host(host) => formatter.write_str(host),
        }
    }
}

impl<'de> Deserialize<'de> for AllowRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A host name in the form rules compare: lower case, no trailing dot.
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases: &[(&str, AddressClass)] = &[
            ("8.8.8.8", AddressClass::Public),
            ("1.1.1.1", AddressClass::Public),
            ("172.15.255.255", AddressClass::Public),
            ("172.32.0.0", AddressClass::Public),
            ("100.63.255.255", AddressClass::Public),
            ("100.128.0.0", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::Metadata),
            ("169.254.170.2", AddressClass::Metadata),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("100.64.0.1", AddressClass::CarrierGradeNat),
            ("100.127.255.255", AddressClass::CarrierGradeNat),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("240.0.0.1", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Documentation),
            ("198.51.100.7", AddressClass::Documentation),
            ("203.0.113.9", AddressClass::Documentation),
            ("198.18.0.1", AddressClass::Reserved),
            ("192.0.0.170", AddressClass::Reserved),
            ("2606:4700:4700::1111", AddressClass::Public),
            ("::1", AddressClass::Loopback),
            ("::", AddressClass::Unspecified),
            ("fe80::1", AddressClass::LinkLocal),
            ("fc00::1", AddressClass::Private),
            ("fd12:3456::1", AddressClass::Private),
            ("fec0::1", AddressClass::Private),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("ff02::1", AddressClass::Multicast),
            ("2001:db8::1", AddressClass::Documentation),
            ("3fff::1", AddressClass::Documentation),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::Metadata),
            ("::ffff:8.8.8.8", AddressClass::Public),
            ("::127.0.0.1", AddressClass::Loopback),
            ("::8.8.8.8", AddressClass::Reserved),
            ("64:ff9b::7f00:1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::Metadata),
            ("64:ff9b::c0a8:101", AddressClass::Private),
            ("64:ff9b::808:808", AddressClass::Public),
            ("64:ff9b:1::808:808", AddressClass::Private),
            ("2002:7f00:1::", AddressClass::Loopback),
            ("2002:0808:0808::1", AddressClass::Public),
            ("2001::1", AddressClass::Reserved),
            ("2001:2::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
            ("4000::1", AddressClass::Reserved),
        ];
        for (text, expected) in cases {
            let address: IpAddr = text.parse().unwrap();
            assert_eq!(classify(address), *expected, "{text}");
        }
    }

    #[test]
    fn networks_match_by_prefix_and_across_the_mapped_form() {
        let loopback: IpNetwork = "127.0.0.0/8".parse().unwrap();
        assert!(loopback.contains("127.9.9.9".parse().unwrap()));
        assert!(loopback.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!loopback.contains("128.0.0.1".parse().unwrap()));
        let single: IpNetwork = "10.0.0.5".parse().unwrap();
        assert!(single.contains("10.0.0.5".parse().unwrap()));
        assert!(!single.contains("10.0.0.6".parse().unwrap()));
        let v6: IpNetwork = "[fd00::]/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let everything: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
        assert!("10.0.0.0/x".parse::<IpNetwork>().is_err());
    }

    #[test]
    fn allow_rules_parse_addresses_networks_and_hosts() {
        assert_eq!(
            "127.0.0.1".parse::<AllowRule>().unwrap(),
            AllowRule::Network("127.0.0.1/32".parse().unwrap())
        );
        assert_eq!(
            "Intranet.Example.com.".parse::<AllowRule>().unwrap(),
            AllowRule::Host("intranet.example.com".into())
        );
        assert!("intranet.example.com"
            .parse::<AllowRule>()
            .unwrap()
            .allows_host("INTRANET.example.com."));
        let error = "http://x/".parse::<AllowRule>().unwrap_err();
        assert!(error.to_string().contains("write an IP address"), "{error}");
        assert!("".parse::<AllowRule>().is_err());
        assert!("bad_host!".parse::<AllowRule>().is_err());
    }
}
