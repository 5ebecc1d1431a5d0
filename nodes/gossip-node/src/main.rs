//! `gossip-node`: a plain rust-libp2p gossipsub node.
//!
//! TCP, noise and yamux (or mplex, `--muxer mplex`) on the ordinary tokio multi-thread runtime, gossipsub with the Ethereum
//! consensus parameters (D = 8 within 6–12, heartbeat 0.7 s, message cache 6/3, signed messages,
//! strict validation; with `--validation-delay MS` each message is accepted MS ms after it
//! arrives, and forwarded only then). Nothing in it knows about a simulator: it is the kind of program the
//! direct hosts exist to run, and it runs the same on a real network.
//!
//! Node `i` of `n` listens on `--listen`, dials every `--peer` (or, with `--dial K`, the `K`
//! entries of the address book before its own; with `--graph FILE`, the entries on line `i` of
//! FILE, or of `--graph-text`'s `;`-separated lines), subscribes to `beacon_block`, and from `--genesis` on, in each `--slot` of `--slots`,
//! the node with index `slot mod n` (or the slot's entry of `--proposers`) publishes one block of
//! `--size` bytes. Each block carries its slot, its publisher and its
//! publication time (Unix ns), so every receiver prints how long it took:
//!
//! ```text
//! recv slot=3 publisher=3 via=5 delay_us=41873
//! ```
//!
//! (once per slot and publisher) and at the end `copies node=i first=F all=A` (block messages
//! received first and in all, duplicates included: gossipsub's own metrics) and `done node=i
//! received=R expected=E`, counting the blocks of the schedule above. With `--score` it scores its peers and prints, before `done`,
//! `mesh peers=M surrogates=S` (peers of no known index count as surrogates) and one
//! `score node=K value=V` per connected peer. Node keys are derived from the index, so
//! peer ids, and the `via` column, are the same on every run.

use anyhow::{Context, Result};
use clap::Parser;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, tcp, yamux};
use prometheus_client::registry::Registry;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "A rust-libp2p gossipsub node that publishes and logs blocks")]
struct Args {
    /// This node's index (its key, and the slots it publishes in).
    #[arg(long)]
    index: u32,
    /// Number of nodes in the network.
    #[arg(long)]
    nodes: u32,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:9000")]
    listen: SocketAddrV4,
    /// Peers to dial (host:port or ip:port), comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    peer: Vec<String>,
    /// Treat `--peer` as the address book of all nodes in index order and dial only the `K`
    /// entries before this node's own (index − 1, …, index − K, wrapping around).
    #[arg(long, value_name = "K")]
    dial: Option<u32>,
    /// Treat `--peer` as the address book of all nodes in index order and dial the entries
    /// listed on line `index` of FILE (indices separated by spaces; one line per node), so a
    /// network can be given any peer graph (a surrogate run's, for calibration).
    #[arg(long, value_name = "FILE", conflicts_with = "dial")]
    graph: Option<std::path::PathBuf>,
    /// `--graph`'s lines given on the command line, separated by `;` (a path's length is part of
    /// what a program allocates, so a graph file in a different folder could change a run).
    #[arg(long, value_name = "LINES", conflicts_with_all = ["dial", "graph"])]
    graph_text: Option<String>,
    /// Added to `--index`: the node's index in the network is BASE + INDEX (for networks whose
    /// nodes come from several groups, each numbered from 0).
    #[arg(long, value_name = "BASE", default_value_t = 0)]
    index_base: u32,
    /// Who publishes each slot's block, comma-separated node indices (default: node `slot mod
    /// nodes`); slots beyond the list have no block.
    #[arg(long, value_delimiter = ',')]
    proposers: Option<Vec<u32>>,
    /// Seconds from start until slot 0 (time to connect and form meshes).
    #[arg(long, default_value_t = 12)]
    genesis: u64,
    /// Slot length, seconds.
    #[arg(long, default_value_t = 12)]
    slot: u64,
    /// Slots to run; the node exits one slot after the last.
    #[arg(long, default_value_t = 3)]
    slots: u64,
    /// Block size, bytes.
    #[arg(long, default_value_t = 100 * 1024)]
    size: usize,
    /// Print each connection as it is established.
    #[arg(long)]
    verbose: bool,
    /// Stream muxer: `yamux`, or `mplex` (which older Ethereum clients still speak).
    #[arg(long, default_value = "yamux", value_parser = ["yamux", "mplex"])]
    muxer: String,
    /// Message ids: libp2p's default (`from-seqno`: publisher and sequence number) or `content`
    /// (SHA-256 of the data), as the network's peers must agree.
    #[arg(long, default_value = "from-seqno", value_parser = ["from-seqno", "content"])]
    message_id: String,
    /// Score peers (gossipsub v1.1 peer scoring: behaviour penalties, invalid messages, first
    /// deliveries and time in mesh on `beacon_block`) and print each peer's score at the end.
    #[arg(long)]
    score: bool,
    /// Validate each message for MS milliseconds before accepting it (gossipsub's manual
    /// validation: it is forwarded only then), as a client checking a signature or a proof
    /// would; 0 accepts at once.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    validation_delay: u64,
}

/// Bytes of a block before its filler: slot, publisher, publication time.
const HEADER: usize = 8 + 4 + 8;

/// The key of node `index`: derived from the index so that peer ids are stable across runs.
fn key_of(index: u32) -> Keypair {
    let mut secret = [0u8; 32];
    secret[..4].copy_from_slice(&index.to_be_bytes());
    secret[4..12].copy_from_slice(b"gossipnd");
    Keypair::ed25519_from_bytes(secret).expect("32 bytes make an ed25519 secret key")
}

/// The `--peer` entries this node dials, given the text of `--graph` if there is one.
fn to_dial<'a>(args: &'a Args, graph: Option<&str>) -> Result<Vec<&'a String>> {
    let n = args.peer.len() as u32;
    let book = |option: &str| {
        anyhow::ensure!(
            n == args.nodes,
            "{option} needs one --peer entry per node ({} given, {} nodes)",
            n,
            args.nodes
        );
        Ok(())
    };
    if let Some(text) = graph {
        book("--graph")?;
        let line =
            text.lines().nth(args.index as usize).with_context(|| format!("--graph has no line {}", args.index))?;
        return line
            .split_whitespace()
            .map(|w| match w.parse::<u32>() {
                Ok(j) if j < n && j != args.index => Ok(&args.peer[j as usize]),
                _ => anyhow::bail!("--graph line {}: {w:?} is not another node's index", args.index),
            })
            .collect();
    }
    let Some(k) = args.dial else { return Ok(args.peer.iter().collect()) };
    book("--dial")?;
    Ok((1..=k.min(n - 1)).map(|d| &args.peer[((args.index + n - d) % n) as usize]).collect())
}

/// `--graph-text` as `--graph`'s file would hold it: one line per `;`-separated entry, the last
/// too when it is empty (a node that dials nobody).
fn inline_graph(text: &str) -> String {
    text.replace(';', "\n") + "\n"
}

/// The node that publishes slot `slot`'s block, if any.
fn proposer(args: &Args, slot: u64) -> Option<u32> {
    match &args.proposers {
        Some(list) => list.get(slot as usize).copied(),
        None => Some((slot % args.nodes as u64) as u32),
    }
}

/// The IPv4 address of `host:port`, through the system resolver (`/etc/hosts`, DNS).
fn resolve(peer: &str) -> Result<SocketAddrV4> {
    peer.to_socket_addrs()
        .with_context(|| format!("resolving {peer}"))?
        .find_map(|a| match a {
            SocketAddr::V4(v4) => Some(v4),
            SocketAddr::V6(_) => None,
        })
        .with_context(|| format!("{peer} has no IPv4 address"))
}

/// Unix time in ns.
fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A block: header, then filler that depends on the slot (so blocks differ and message ids too).
fn block(slot: u64, publisher: u32, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size.max(HEADER));
    data.extend_from_slice(&slot.to_be_bytes());
    data.extend_from_slice(&publisher.to_be_bytes());
    data.extend_from_slice(&unix_ns().to_be_bytes());
    let mut x = slot.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push(x as u8);
    }
    data
}

/// (slot, publisher, publication time) of a received block, if it is one.
fn parse_block(data: &[u8]) -> Option<(u64, u32, u64)> {
    let slot = u64::from_be_bytes(data.get(0..8)?.try_into().ok()?);
    let publisher = u32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    let sent = u64::from_be_bytes(data.get(12..20)?.try_into().ok()?);
    Some((slot, publisher, sent))
}

/// Gossipsub with the Ethereum consensus p2p parameters.
fn gossip_config(size: usize, message_id: &str, validate: bool) -> Result<gossipsub::Config> {
    let mut builder = gossipsub::ConfigBuilder::default();
    if validate {
        builder.validate_messages();
    }
    if message_id == "content" {
        builder.message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::new(&Sha256::digest(&m.data)));
    }
    builder
        .mesh_n(8)
        .mesh_n_low(6)
        .mesh_n_high(12)
        .gossip_lazy(6)
        .heartbeat_interval(Duration::from_millis(700))
        .history_length(6)
        .history_gossip(3)
        .fanout_ttl(Duration::from_secs(60))
        .max_transmit_size((size + 4096).max(1 << 20))
        .validation_mode(ValidationMode::Strict)
        .build()
        .map_err(|e| anyhow::anyhow!("gossipsub configuration: {e}"))
}

/// The behaviour of this node.
type Gossip = gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::AllowAllSubscriptionFilter>;

/// The gossipsub behaviour with `Signed` authenticity, scoring peers with `score`.
fn behaviour(
    key: &Keypair,
    config: gossipsub::Config,
    score: bool,
    registry: &mut Registry,
) -> Result<Gossip, Box<dyn std::error::Error + Send + Sync>> {
    let mut gossip = Gossip::new(MessageAuthenticity::Signed(key.clone()), config)?
        .with_metrics(registry, gossipsub::MetricsConfig::default());
    if score {
        gossip.with_peer_score(score_params(), gossipsub::PeerScoreThresholds::default())?;
    }
    Ok(gossip)
}

/// Peer scoring: libp2p's defaults, with `beacon_block` scored for time in mesh (per second),
/// first deliveries and invalid messages. Mesh delivery counts are not scored: at one block per slot no peer could
/// meet libp2p's default threshold of 20 per window.
fn score_params() -> gossipsub::PeerScoreParams {
    let topic = gossipsub::TopicScoreParams {
        time_in_mesh_quantum: Duration::from_secs(1),
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams::default();
    params.topics.insert(IdentTopic::new("beacon_block").hash(), topic);
    params
}

/// The swarm: TCP, noise, the chosen muxer, gossipsub (its metrics in `registry`).
fn build_swarm(
    key: Keypair,
    config: gossipsub::Config,
    muxer: &str,
    score: bool,
    registry: &mut Registry,
) -> Result<Swarm<Gossip>> {
    let builder = SwarmBuilder::with_existing_identity(key).with_tokio();
    let tcp = || tcp::Config::default().nodelay(true);
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(3600));
    Ok(match muxer {
        "mplex" => builder
            .with_tcp(tcp(), noise::Config::new, libp2p_mplex::Config::default)?
            .with_behaviour(|key| behaviour(key, config, score, registry))
            .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?
            .with_swarm_config(idle)
            .build(),
        _ => builder
            .with_tcp(tcp(), noise::Config::new, yamux::Config::default)?
            .with_behaviour(|key| behaviour(key, config, score, registry))
            .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?
            .with_swarm_config(idle)
            .build(),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    args.index += args.index_base;
    anyhow::ensure!(args.nodes > 0 && args.index < args.nodes, "--index-base + --index must be below --nodes");
    if let Some(p) = args.proposers.iter().flatten().find(|&&p| p >= args.nodes) {
        anyhow::bail!("--proposers names node {p}, but there are {} nodes", args.nodes);
    }
    let peers: Vec<PeerId> = (0..args.nodes).map(|i| key_of(i).public().to_peer_id()).collect();
    let index_of = |p: &PeerId| peers.iter().position(|q| q == p).map_or(-1, |i| i as i64);

    let config = gossip_config(args.size, &args.message_id, args.validation_delay > 0)?;
    let mut registry = Registry::default();
    let mut swarm = build_swarm(key_of(args.index), config, &args.muxer, args.score, &mut registry)?;
    let topic = IdentTopic::new("beacon_block");
    swarm.behaviour_mut().subscribe(&topic).context("subscribing")?;
    let listen: Multiaddr = format!("/ip4/{}/tcp/{}", args.listen.ip(), args.listen.port()).parse()?;
    swarm.listen_on(listen).context("listening")?;
    let graph = match (&args.graph, &args.graph_text) {
        (Some(path), _) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        (None, Some(text)) => Some(inline_graph(text)),
        (None, None) => None,
    };
    for p in to_dial(&args, graph.as_deref())? {
        let ip = resolve(p)?;
        let addr: Multiaddr = format!("/ip4/{}/tcp/{}", ip.ip(), ip.port()).parse()?;
        swarm.dial(addr).with_context(|| format!("dialling {p}"))?;
    }

    let start = tokio::time::Instant::now();
    let slot = Duration::from_secs(args.slot);
    let mut ticks = tokio::time::interval_at(start + Duration::from_secs(args.genesis), slot);
    let mut next_slot = 0u64;
    let mut received = BTreeSet::new();
    let expected = (0..args.slots).filter(|&s| proposer(&args, s).is_some_and(|p| p != args.index)).count();
    let validation = Duration::from_millis(args.validation_delay);
    let mut validating = futures::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            Some((id, source)) = validating.next(), if !validating.is_empty() => {
                // The message may have left the cache meanwhile; nothing is owed then.
                swarm.behaviour_mut().report_message_validation_result(&id, &source, MessageAcceptance::Accept);
            }
            _ = ticks.tick() => {
                if next_slot == args.slots {
                    break;
                }
                if proposer(&args, next_slot) == Some(args.index) {
                    let data = block(next_slot, args.index, args.size);
                    match swarm.behaviour_mut().publish(topic.clone(), data) {
                        Ok(_) => println!("publish slot={next_slot} peers={}", swarm.connected_peers().count()),
                        Err(e) => println!("publish slot={next_slot} failed: {e}"),
                    }
                }
                next_slot += 1;
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                    if !validation.is_zero() {
                        validating.push(async move {
                            tokio::time::sleep(validation).await;
                            (message_id, propagation_source)
                        });
                    }
                    match parse_block(&message.data) {
                        Some((s, publisher, sent)) => {
                            if received.insert((s, publisher)) {
                                let delay_us = unix_ns().saturating_sub(sent) / 1000;
                                println!(
                                    "recv slot={s} publisher={publisher} via={} delay_us={delay_us}",
                                    index_of(&propagation_source)
                                );
                            }
                        }
                        None => println!("recv malformed block of {} bytes", message.data.len()),
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } if args.verbose => {
                    println!("connected node={} dialer={}", index_of(&peer_id), endpoint.is_dialer());
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => println!("dial failed: {error}"),
                _ => {}
            },
        }
    }
    // Blocks of this network's own schedule (other publishers' blocks, e.g. from simulated peers
    // in the same topic, are logged but not counted).
    if args.score {
        let gossip = swarm.behaviour();
        let mesh: Vec<i64> = gossip.mesh_peers(&topic.hash()).map(&index_of).collect();
        println!("mesh peers={} surrogates={}", mesh.len(), mesh.iter().filter(|&&i| i < 0).count());
        for peer in swarm.connected_peers() {
            let score = gossip.peer_score(peer).unwrap_or(f64::NAN);
            println!("score node={} value={score:.3}", index_of(peer));
        }
    }
    let (first, all) = block_counts(&registry)?;
    println!("copies node={} first={first} all={all}", args.index);
    let scheduled = received.iter().filter(|&&(s, p)| proposer(&args, s) == Some(p)).count();
    println!("done node={} received={scheduled} expected={expected}", args.index);
    Ok(())
}

/// Block messages gossipsub received first and in all (duplicates included), from its metrics.
fn block_counts(registry: &Registry) -> Result<(u64, u64)> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).context("reading gossipsub's metrics")?;
    Ok(counts_in(&text))
}

/// The received-message counters of the `beacon_block` topic in metrics `text`: (first, all).
fn counts_in(text: &str) -> (u64, u64) {
    let counter = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains("beacon_block"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    (counter("topic_msg_recv_counts_total"), counter("topic_msg_recv_counts_unfiltered_total"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_differ_by_slot() {
        let a = block(3, 1, 1000);
        let b = block(4, 1, 1000);
        assert_eq!(a.len(), 1000);
        let (slot, publisher, sent) = parse_block(&a).unwrap();
        assert_eq!((slot, publisher), (3, 1));
        assert!(sent > 0);
        assert_ne!(a[HEADER..], b[HEADER..]);
        assert_eq!(parse_block(&a[..10]), None);
    }

    #[test]
    fn dial_k_takes_the_entries_before_this_node_wrapping() {
        let book = "a:1,b:1,c:1,d:1,e:1";
        let args = Args::parse_from(["gossip-node", "--index", "1", "--nodes", "5", "--peer", book, "--dial", "3"]);
        assert_eq!(to_dial(&args, None).unwrap(), ["a:1", "e:1", "d:1"]);
        let all = Args::parse_from(["gossip-node", "--index", "1", "--nodes", "5", "--peer", "x:1"]);
        assert_eq!(to_dial(&all, None).unwrap(), ["x:1"]);
        let short = Args::parse_from(["gossip-node", "--index", "1", "--nodes", "5", "--peer", "x:1", "--dial", "2"]);
        assert!(to_dial(&short, None).is_err());
    }

    #[test]
    fn graph_lines_name_the_nodes_to_dial() {
        let book = "a:1,b:1,c:1,d:1";
        let args = Args::parse_from(["gossip-node", "--index", "2", "--nodes", "4", "--peer", book, "--graph", "g"]);
        assert_eq!(to_dial(&args, Some("1\n0 3\n3 0\n\n")).unwrap(), ["d:1", "a:1"]);
        assert!(to_dial(&args, Some("1\n0 3\n2\n")).is_err(), "a node does not dial itself");
        assert!(to_dial(&args, Some("1\n0\n9\n")).is_err(), "an index beyond the book");
        assert!(to_dial(&args, Some("1\n")).is_err(), "no line for the node");
        let short = Args::parse_from(["gossip-node", "--index", "0", "--nodes", "4", "--peer", "a:1", "--graph", "g"]);
        assert!(to_dial(&short, Some("1\n")).is_err());
        // The same lines inline; the last node's line is empty and still there.
        let last =
            Args::parse_from(["gossip-node", "--index", "3", "--nodes", "4", "--peer", book, "--graph-text", "x"]);
        assert_eq!(to_dial(&last, Some(&inline_graph("1;0 3;3 0;"))).unwrap(), Vec::<&String>::new());
        assert_eq!(to_dial(&args, Some(&inline_graph("1;0 3;3 0;"))).unwrap(), ["d:1", "a:1"]);
    }

    #[test]
    fn copies_are_read_from_the_block_topics_counters() {
        let text = "# HELP topic_msg_recv_counts Number of gossip messages received on each topic.\n\
                    topic_msg_recv_counts_total{hash=\"beacon_block\"} 7\n\
                    topic_msg_recv_counts_unfiltered_total{hash=\"beacon_block\"} 19\n\
                    topic_msg_recv_counts_unfiltered_total{hash=\"other\"} 5\n";
        assert_eq!(counts_in(text), (7, 19));
        assert_eq!(counts_in(""), (0, 0));
    }

    #[test]
    fn proposers_default_to_round_robin_and_follow_a_list() {
        let rr = Args::parse_from(["gossip-node", "--index", "0", "--nodes", "3"]);
        assert_eq!((0..4).map(|s| proposer(&rr, s)).collect::<Vec<_>>(), [Some(0), Some(1), Some(2), Some(0)]);
        let list = Args::parse_from(["gossip-node", "--index", "0", "--nodes", "3", "--proposers", "2,2,0"]);
        assert_eq!((0..4).map(|s| proposer(&list, s)).collect::<Vec<_>>(), [Some(2), Some(2), Some(0), None]);
    }

    #[test]
    fn node_keys_are_stable_and_distinct() {
        assert_eq!(key_of(2).public().to_peer_id(), key_of(2).public().to_peer_id());
        assert_ne!(key_of(1).public().to_peer_id(), key_of(2).public().to_peer_id());
    }

    #[test]
    fn the_ethereum_parameters_are_a_valid_configuration() {
        let c = gossip_config(100 * 1024, "from-seqno", false).unwrap();
        assert_eq!(c.mesh_n(), 8);
        assert_eq!(c.heartbeat_interval(), Duration::from_millis(700));
    }
}
