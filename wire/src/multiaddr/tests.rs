//! Multiaddr tests: hand-derived vectors from `protocols.csv`, and interop with rust-libp2p's
//! `multiaddr` crate in both forms.

use super::*;
use proptest::prelude::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

#[test]
fn vectors() {
    let cases: [(&str, &[u8]); 5] = [
        ("/ip4/127.0.0.1/tcp/4001", &[0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1]),
        ("/ip4/1.2.3.4/udp/9000/quic-v1", &[0x04, 1, 2, 3, 4, 0x91, 0x02, 0x23, 0x28, 0xcd, 0x03]),
        ("/ip6/::1/tcp/1", &[0x29, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x06, 0, 1]),
        ("/dns4/a.b/tcp/80", &[0x36, 3, b'a', b'.', b'b', 0x06, 0, 80]),
        ("/dns/x/dns6/y", &[0x35, 1, b'x', 0x37, 1, b'y']),
    ];
    for (text, bytes) in cases {
        let a = addr(text);
        assert_eq!(a.to_bytes(), bytes, "{text}");
        assert_eq!(Multiaddr::from_bytes(bytes), Ok(a.clone()));
        assert_eq!(a.to_string(), text);
    }
}

#[test]
fn p2p_is_base58_of_the_multihash() {
    // An identity multihash of three bytes (the multiaddr crate checks real peer ids below).
    let id = vec![0x00, 0x03, 1, 2, 3];
    let a = Multiaddr(vec![Protocol::P2p(id.clone())]);
    let mut bytes = vec![0xa5, 0x03, 5];
    bytes.extend(&id);
    assert_eq!(a.to_bytes(), bytes);
    let text = a.to_string();
    assert_eq!(text, format!("/p2p/{}", bs58::encode(&id).into_string()));
    assert_eq!(addr(&text), a);
    assert_eq!(addr(&text.replace("/p2p/", "/ipfs/")), a);
}

#[test]
fn errors() {
    assert_eq!(Multiaddr::from_bytes(&[0x04, 1, 2]), Err(MultiaddrError::Truncated));
    assert_eq!(Multiaddr::from_bytes(&[0x21]), Err(MultiaddrError::UnknownCode(0x21)));
    assert_eq!(Multiaddr::from_bytes(&[0x84, 0x00, 1, 2, 3, 4]), Err(MultiaddrError::Varint));
    assert_eq!(
        Multiaddr::from_bytes(&[0xa5, 0x03, 2, 0x00, 0x05]),
        Err(MultiaddrError::InvalidValue { protocol: "p2p", value: "[0, 5]".into() })
    );
    assert_eq!(
        Multiaddr::from_bytes(&[0x35, 0]),
        Err(MultiaddrError::InvalidValue { protocol: "dns", value: "[]".into() })
    );
    assert_eq!(
        Multiaddr::from_bytes(&[0x35, 3, b'a', b'/', b'b']).map(|_| ()),
        Err(MultiaddrError::InvalidValue { protocol: "dns", value: "[97, 47, 98]".into() })
    );
    assert_eq!(Multiaddr::from_bytes(&[0x35, 0xff, 0xff, 0xff, 0x0f]), Err(MultiaddrError::Truncated));
    assert_eq!("ip4/1.2.3.4".parse::<Multiaddr>(), Err(MultiaddrError::Malformed));
    assert_eq!("/ip4".parse::<Multiaddr>(), Err(MultiaddrError::Malformed));
    assert_eq!("/ip4/1.2.3.4/".parse::<Multiaddr>(), Err(MultiaddrError::UnknownName(String::new())));
    assert_eq!("/quic".parse::<Multiaddr>(), Err(MultiaddrError::UnknownName("quic".into())));
    assert!(matches!("/tcp/65536".parse::<Multiaddr>(), Err(MultiaddrError::InvalidValue { protocol: "tcp", .. })));
    assert!(matches!("/p2p/0OIl".parse::<Multiaddr>(), Err(MultiaddrError::InvalidValue { protocol: "p2p", .. })));
    assert_eq!("".parse::<Multiaddr>(), Ok(Multiaddr::default()));
}

fn peer_id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Ed25519-style: identity multihash of a 36-byte protobuf key.
        proptest::collection::vec(any::<u8>(), 32)
            .prop_map(|k| [&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20][..], &k].concat()),
        // SHA-256 multihash (RSA, larger keys).
        proptest::collection::vec(any::<u8>(), 32).prop_map(|d| [&[0x12, 0x20][..], &d].concat()),
    ]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    let name = "[a-z0-9][a-z0-9.-]{0,20}";
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| Protocol::Ip4(a.into())),
        any::<[u8; 16]>().prop_map(|a| Protocol::Ip6(a.into())),
        any::<u16>().prop_map(Protocol::Tcp),
        any::<u16>().prop_map(Protocol::Udp),
        Just(Protocol::QuicV1),
        peer_id().prop_map(Protocol::P2p),
        name.prop_map(Protocol::Dns),
        name.prop_map(Protocol::Dns4),
        name.prop_map(Protocol::Dns6),
    ]
}

fn multiaddr() -> impl Strategy<Value = Multiaddr> {
    proptest::collection::vec(protocol(), 0..6).prop_map(Multiaddr)
}

proptest! {
    #[test]
    fn round_trips(a in multiaddr()) {
        prop_assert_eq!(Multiaddr::from_bytes(&a.to_bytes()), Ok(a.clone()));
        prop_assert_eq!(a.to_string().parse::<Multiaddr>(), Ok(a));
    }

    #[test]
    fn the_multiaddr_crate_agrees(a in multiaddr()) {
        let bytes = a.to_bytes();
        let theirs = ::multiaddr::Multiaddr::try_from(bytes.clone()).unwrap();
        prop_assert_eq!(theirs.to_string(), a.to_string());
        let parsed: ::multiaddr::Multiaddr = a.to_string().parse().unwrap();
        prop_assert_eq!(parsed.to_vec(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(a) = Multiaddr::from_bytes(&bytes) {
            prop_assert_eq!(a.to_bytes(), bytes);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "(/[a-z0-9.:-]{0,8}){0,6}") {
        if let Ok(a) = s.parse::<Multiaddr>() {
            prop_assert_eq!(Multiaddr::from_bytes(&a.to_bytes()), Ok(a));
        }
    }
}
