//! Peer placeholders: a process's arguments and environment may name peers it should dial,
//! `{peers:GROUP:N}` (`name:port,…`), `{multiaddrs:GROUP:N}` (`/ip4/…/tcp/…/p2p/…,…`) or
//! `{enrs:GROUP:N}` (discv5 records, `enr:…,…`, e.g. bootnodes), so a real client in a hybrid
//! run is given surrogate identities to connect to without a peers file.
//! Which `N` members of `GROUP` a host gets, and their peer ids, is the run's business (it knows
//! the surrogates' keys): it answers through a [`PeerBook`]. Placeholders are replaced once, when
//! the engine is built, before the per-host ones of [`crate::config::expand`].

use std::net::Ipv4Addr;

/// A peer a placeholder names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// Its host name (resolvable inside the simulation).
    pub name: String,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
    /// The TCP port it listens on.
    pub port: u16,
    /// Its libp2p peer id, base58.
    pub peer_id: String,
    /// Its discv5 record, as text (`enr:…`).
    pub enr: String,
}

/// Who a host's peer placeholders name: supplied by the run.
pub trait PeerBook {
    /// The `n` members of host group `group` given to host `host` (deterministic: the same on
    /// every shard and run), or why there are none.
    fn peers(&self, host: u32, group: &str, n: u32) -> Result<Vec<PeerAddr>, String>;
}

/// How a placeholder prints its peers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PeerForm {
    /// `{peers:…}`: `name:port`, comma-separated.
    HostPort,
    /// `{multiaddrs:…}`: `/ip4/IP/tcp/PORT/p2p/ID`, comma-separated.
    Multiaddr,
    /// `{enrs:…}`: discv5 records (`enr:…`), comma-separated.
    Enr,
}

/// One peer placeholder in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRef<'a> {
    /// The whole placeholder, braces included.
    pub token: &'a str,
    /// How it prints.
    pub form: PeerForm,
    /// The host group it draws from.
    pub group: &'a str,
    /// How many peers.
    pub n: u32,
}

/// Every peer placeholder in `text`, in order, or what is wrong with one. Text that merely
/// contains braces (`%{http_code}`, JSON) is not a placeholder and is left alone.
pub fn peer_refs(text: &str) -> Result<Vec<PeerRef<'_>>, String> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(at) = text[rest..].find('{').map(|i| rest + i) {
        let inner = &text[at + 1..];
        let form = if inner.starts_with("peers:") {
            PeerForm::HostPort
        } else if inner.starts_with("multiaddrs:") {
            PeerForm::Multiaddr
        } else if inner.starts_with("enrs:") {
            PeerForm::Enr
        } else {
            rest = at + 1;
            continue;
        };
        let Some(len) = inner.find('}') else {
            return Err(format!("unclosed placeholder {:?}", &text[at..]));
        };
        let token = &text[at..at + len + 2];
        let parts: Vec<&str> = inner[..len].split(':').collect();
        let n = match parts.as_slice() {
            [_, group, n] if !group.is_empty() => n.parse::<u32>().ok().filter(|&n| n > 0),
            _ => None,
        };
        let Some(n) = n else {
            return Err(format!(
                "{token} should be {{peers:GROUP:N}}, {{multiaddrs:GROUP:N}} or {{enrs:GROUP:N}} with N at least 1"
            ));
        };
        found.push(PeerRef { token, form, group: parts[1], n });
        rest = at + len + 2;
    }
    Ok(found)
}

/// How `peers` print in `form`.
pub fn render(form: PeerForm, peers: &[PeerAddr]) -> String {
    let one = |p: &PeerAddr| match form {
        PeerForm::HostPort => format!("{}:{}", p.name, p.port),
        PeerForm::Multiaddr => format!("/ip4/{}/tcp/{}/p2p/{}", p.ip, p.port, p.peer_id),
        PeerForm::Enr => p.enr.clone(),
    };
    peers.iter().map(one).collect::<Vec<_>>().join(",")
}

/// `text` with its peer placeholders replaced by what `book` gives host `host`.
pub fn expand_peers(text: &str, host: u32, book: &dyn PeerBook) -> Result<String, String> {
    let mut out = text.to_string();
    for r in peer_refs(text)? {
        let peers = book.peers(host, r.group, r.n).map_err(|e| format!("{}: {e}", r.token))?;
        out = out.replacen(r.token, &render(r.form, &peers), 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Book;
    impl PeerBook for Book {
        fn peers(&self, host: u32, group: &str, n: u32) -> Result<Vec<PeerAddr>, String> {
            if group != "tail" {
                return Err(format!("no group {group}"));
            }
            Ok((0..n)
                .map(|k| PeerAddr {
                    name: format!("tail{}", host * 10 + k),
                    ip: Ipv4Addr::new(10, 0, 0, k as u8 + 1),
                    port: 9000,
                    peer_id: format!("12D3Koo{k}"),
                    enr: format!("enr:x{k}"),
                })
                .collect())
        }
    }

    #[test]
    fn placeholders_are_found_and_other_braces_are_not() {
        let refs = peer_refs("--peer {peers:tail:8} -w %{http_code} {\"a\":1} {multiaddrs:x.y:2}").unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(
            (refs[0].token, refs[0].form, refs[0].group, refs[0].n),
            ("{peers:tail:8}", PeerForm::HostPort, "tail", 8)
        );
        assert_eq!((refs[1].group, refs[1].form, refs[1].n), ("x.y", PeerForm::Multiaddr, 2));
        let refs = peer_refs("--bootnodes {enrs:tail:3}").unwrap();
        assert_eq!((refs[0].token, refs[0].form, refs[0].n), ("{enrs:tail:3}", PeerForm::Enr, 3));
        assert!(peer_refs("{index} {host}").unwrap().is_empty());
    }

    #[test]
    fn malformed_placeholders_are_errors() {
        for bad in [
            "{peers:tail}",
            "{peers:tail:0}",
            "{peers::3}",
            "{peers:tail:x}",
            "{multiaddrs:a:b:c}",
            "{peers:tail:3",
            "{enrs:t}",
        ] {
            assert!(peer_refs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn peers_expand_in_both_forms_per_host() {
        assert_eq!(expand_peers("--peer {peers:tail:2}", 3, &Book).unwrap(), "--peer tail30:9000,tail31:9000");
        assert_eq!(
            expand_peers("{multiaddrs:tail:1};{peers:tail:1}", 0, &Book).unwrap(),
            "/ip4/10.0.0.1/tcp/9000/p2p/12D3Koo0;tail0:9000"
        );
        assert_eq!(expand_peers("--bootnodes={enrs:tail:2}", 0, &Book).unwrap(), "--bootnodes=enr:x0,enr:x1");
        let err = expand_peers("{peers:hot:1}", 0, &Book).unwrap_err();
        assert!(err.contains("{peers:hot:1}") && err.contains("no group hot"), "{err}");
    }
}
