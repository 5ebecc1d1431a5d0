//! Any bytes as IPv4 packets reaching a direct host's TCP/IP stack (a listening socket on port
//! 80): the stack drops or answers them, never panics; the RST detector never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smoltcp::socket::tcp;
use std::net::Ipv4Addr;
use thermocline_net::stack::{TcpStack, rst_tuple};

fuzz_target!(|data: &[u8]| {
    let mut st = TcpStack::new(Ipv4Addr::new(10, 0, 0, 2), 1, 0);
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 4096]), tcp::SocketBuffer::new(vec![0; 4096]));
    s.listen(80).expect("a fresh socket listens");
    st.sockets.add(s);
    // Split the input into packets at each 0xff byte, so one input can hold several segments.
    for (i, packet) in data.split(|&b| b == 0xff).enumerate() {
        let _ = rst_tuple(packet);
        st.push_rx(packet.to_vec());
        st.run(i as u64 * 1_000_000);
        let _ = st.take_tx();
    }
});
