//! The network between hosts, as every engine sees it: everything from "a host sends bytes" to
//! "bytes arrive at a host", sans-IO (the caller gives the time and the random stream; nothing
//! here queues events, owns hosts or knows an engine).
//!
//! - [`link`]: one direction of a host's interface as a FIFO queue with named lanes. Plain `Copy`
//!   data, so a million surrogate identities keep theirs in arrays.
//! - [`path`]: the fate of one transmission over the network model's path between two hosts
//!   (latency, jitter, loss), with the [`rules`] in force at its departure applied on top, and
//!   [`InOrder`], which keeps each (sender, receiver) path's packets in order.
//! - [`rules`]: time-windowed verdicts between groups of hosts (partitions, extra delay, extra
//!   loss), consulted at the sender, in the manner of turmoil's `Rule` and smoltcp's fault
//!   injector. Scenarios fill the table; an empty table changes nothing.
//!
//! - [`stack`]: a host's TCP/IP stack (smoltcp) with Linux's congestion window and ACK timing
//!   ([`linux`]), sans-IO; [`udp`]: UDP sockets and datagrams as IPv4 packets; [`udp_ports`]:
//!   who holds a host's UDP ports, with Linux's sharing and delivery rules. The endpoint level:
//!   what direct hosts' socket calls run on.
//! - [`host`]: [`host::HostNet`], one host's socket table (the stack, TCP and UDP sockets by
//!   handle, ports, IPv6 flows) with Linux's rules and errnos; [`tcp`] and [`inet6`]: its TCP
//!   socket objects and their IPv6 side. Direct hosts' descriptors are handles into it.
//! - [`endpoint`]: [`Endpoint`], events over a [`host::HostNet`] with no process behind it
//!   (listening ports, connections by handle, datagram sockets), for surrogate identities that
//!   meet real clients.
//! - [`mark`]: [`StreamMark`], the note a stream's sender gives the receiver's host of where a
//!   message ends on a TCP stream, so its arrival is timed exactly.
//! - [`pages`]: returns the pages of drained socket buffers to the kernel, so a connection's
//!   memory is what is in flight, as in Linux, not its windows.
//!
//! Calls go one way: engines call this crate, which calls only `models` (paths, units, random
//! draws) and `smoltcp`.

pub mod endpoint;
pub mod host;
pub mod inet6;
pub mod link;
pub mod linux;
pub mod mark;
pub mod pages;
#[cfg(test)]
mod pair;
pub mod path;
pub mod rules;
pub mod stack;
pub mod tcp;
pub mod udp;
pub mod udp_ports;

pub use endpoint::{ConnId, Endpoint, NetEvent};
pub use link::{FairLink, FifoLink, Lane, Shaping, express};
pub use mark::{MarkNote, StreamMark};
pub use path::{InOrder, decide};
pub use rules::{Effect, Limit, PathLimit, Rule, Rules};
