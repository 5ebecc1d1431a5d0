use super::*;
use proptest::prelude::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The wire form of one message.
fn msg(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_message(&mut out, text.as_bytes());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Feeds `bytes` to `to` in pieces of `split` bytes (cycling through the sizes given).
fn feed(to: &mut Multistream, bytes: &[u8], splits: &[usize]) -> Result<(), MultistreamError> {
    let mut pos = 0;
    let mut i = 0;
    while pos < bytes.len() {
        let n = splits[i % splits.len()].max(1).min(bytes.len() - pos);
        to.handle_bytes(&bytes[pos..pos + n])?;
        pos += n;
        i += 1;
    }
    Ok(())
}

fn events(ms: &mut Multistream) -> Vec<MultistreamEvent> {
    std::iter::from_fn(|| ms.poll_event()).collect()
}

/// Runs dialer and listener against each other until neither sends; `extra_*` are application
/// bytes each side appends once it has agreed (pipelined behind its last negotiation bytes).
fn run_pair(dialer: &mut Multistream, listener: &mut Multistream, splits: &[usize]) -> Vec<MultistreamEvent> {
    let mut dialer_events = Vec::new();
    loop {
        let mut moved = false;
        if let Some(bytes) = dialer.poll_transmit() {
            moved = true;
            feed(listener, &bytes, splits).unwrap();
        }
        if let Some(bytes) = listener.poll_transmit() {
            moved = true;
            if dialer.wants_bytes() {
                feed(dialer, &bytes, splits).unwrap();
            }
        }
        dialer_events.extend(events(dialer));
        if !moved {
            return dialer_events;
        }
    }
}

fn agreed(protocol: &str, rest: &[u8]) -> MultistreamEvent {
    MultistreamEvent::Agreed { protocol: protocol.into(), rest: rest.to_vec() }
}

#[test]
fn dialer_sends_header_and_first_proposal_at_once() {
    let mut d = Multistream::dialer(names(&["/ipfs/kad/1.0.0", "/b"])).unwrap();
    assert_eq!(d.poll_transmit().unwrap(), cat(&[b"\x13/multistream/1.0.0\n", b"\x10/ipfs/kad/1.0.0\n"]));
    assert_eq!(d.poll_transmit(), None);
    assert_eq!(d.poll_event(), None);
    assert!(d.wants_bytes());
}

#[test]
fn listener_waits_for_the_header_then_echoes() {
    let mut l = Multistream::listener(names(&["/a", "/b"])).unwrap();
    assert_eq!(l.poll_transmit(), None);
    l.handle_bytes(&msg(HEADER)).unwrap();
    assert_eq!(l.poll_transmit().unwrap(), msg(HEADER));
    l.handle_bytes(&msg("/b")).unwrap();
    assert_eq!(l.poll_transmit().unwrap(), msg("/b"));
    assert_eq!(events(&mut l), [agreed("/b", b"")]);
    assert!(!l.wants_bytes());
    assert_eq!(l.handle_bytes(b"x"), Err(MultistreamError::Finished));
}

#[test]
fn pair_agrees_on_first_common_protocol() {
    for split in [1, 2, 3, 5, 19, 1000] {
        let mut d = Multistream::dialer(names(&["/a", "/b"])).unwrap();
        let mut l = Multistream::listener(names(&["/b", "/a"])).unwrap();
        assert_eq!(run_pair(&mut d, &mut l, &[split]), [agreed("/a", b"")]);
        assert_eq!(events(&mut l), [agreed("/a", b"")]);
    }
}

#[test]
fn na_then_fallback_on_the_wire() {
    let mut d = Multistream::dialer(names(&["/x", "/a"])).unwrap();
    let mut l = Multistream::listener(names(&["/a"])).unwrap();
    let hello = d.poll_transmit().unwrap();
    assert_eq!(hello, cat(&[&msg(HEADER), &msg("/x")]));
    l.handle_bytes(&hello).unwrap();
    let answer = l.poll_transmit().unwrap();
    assert_eq!(answer, cat(&[&msg(HEADER), b"\x03na\n"]));
    d.handle_bytes(&answer).unwrap();
    assert_eq!(d.poll_event(), None);
    let retry = d.poll_transmit().unwrap();
    assert_eq!(retry, msg("/a"));
    l.handle_bytes(&retry).unwrap();
    d.handle_bytes(&l.poll_transmit().unwrap()).unwrap();
    assert_eq!(events(&mut d), [agreed("/a", b"")]);
    assert_eq!(events(&mut l), [agreed("/a", b"")]);
}

#[test]
fn every_proposal_refused() {
    let mut d = Multistream::dialer(names(&["/x", "/y"])).unwrap();
    let mut l = Multistream::listener(names(&["/a"])).unwrap();
    assert_eq!(run_pair(&mut d, &mut l, &[4]), [MultistreamEvent::Refused]);
    assert!(!d.wants_bytes());
    assert_eq!(events(&mut l), []);
    assert!(l.wants_bytes(), "the listener waits: a refused dialer just closes the stream");
}

#[test]
fn ls_answered_in_the_specs_format() {
    let mut l = Multistream::listener(names(&["/ipfs/kad/0.2.3", "/ipfs/bitswap/1.0.0"])).unwrap();
    l.handle_bytes(&cat(&[&msg(HEADER), b"\x03ls\n"])).unwrap();
    let mut list = cat(&[b"\x10/ipfs/kad/0.2.3\n", b"\x14/ipfs/bitswap/1.0.0\n", b"\n"]);
    list.insert(0, list.len() as u8);
    assert_eq!(l.poll_transmit().unwrap(), cat(&[&msg(HEADER), &list]));
    l.handle_bytes(&msg("/ipfs/kad/0.2.3")).unwrap();
    assert_eq!(events(&mut l), [agreed("/ipfs/kad/0.2.3", b"")]);
}

#[test]
fn ls_with_nothing_supported_is_a_lone_newline() {
    let mut l = Multistream::listener(Vec::new()).unwrap();
    l.handle_bytes(&cat(&[&msg(HEADER), b"\x03ls\n"])).unwrap();
    assert_eq!(l.poll_transmit().unwrap(), cat(&[&msg(HEADER), b"\x01\n"]));
}

/// Feeds `wire` in pieces of `split` while `ms` wants bytes, as a caller would, and returns
/// what the next layer gets: the ending event's `rest`, then the pieces not fed.
fn next_layer_bytes(ms: &mut Multistream, wire: &[u8], split: usize) -> Vec<u8> {
    let mut pos = 0;
    while ms.wants_bytes() && pos < wire.len() {
        let n = split.min(wire.len() - pos);
        ms.handle_bytes(&wire[pos..pos + n]).unwrap();
        pos += n;
    }
    let mut got = match events(ms).pop() {
        Some(MultistreamEvent::Agreed { rest, .. } | MultistreamEvent::Confirmed { rest }) => rest,
        other => panic!("{other:?}"),
    };
    got.extend_from_slice(&wire[pos..]);
    got
}

#[test]
fn listener_passes_pipelined_bytes_on() {
    // What follows the proposal is the next layer's, even if it looks like multistream.
    let wire = cat(&[&msg(HEADER), &msg("/a"), b"\x03na\nmore app bytes"]);
    for split in [1, 3, 7, wire.len()] {
        let mut l = Multistream::listener(names(&["/a"])).unwrap();
        assert_eq!(next_layer_bytes(&mut l, &wire, split), b"\x03na\nmore app bytes");
    }
}

#[test]
fn dialer_passes_bytes_after_the_echo_on() {
    let mut d = Multistream::dialer(names(&["/a"])).unwrap();
    d.poll_transmit();
    d.handle_bytes(&cat(&[&msg(HEADER), &msg("/a"), b"pong"])).unwrap();
    assert_eq!(events(&mut d), [agreed("/a", b"pong")]);
}

#[test]
fn lazy_dialer_against_listener() {
    for split in [1, 2, 4, 64] {
        let mut d = Multistream::dialer_lazy("/a".into()).unwrap();
        assert_eq!(events(&mut d), [agreed("/a", b"")]);
        let mut first = d.poll_transmit().unwrap();
        assert_eq!(first, cat(&[&msg(HEADER), &msg("/a")]));
        first.extend_from_slice(b"ping");
        let mut l = Multistream::listener(names(&["/b", "/a"])).unwrap();
        assert_eq!(next_layer_bytes(&mut l, &first, split), b"ping");
        let mut answer = l.poll_transmit().unwrap();
        assert_eq!(answer, cat(&[&msg(HEADER), &msg("/a")]));
        answer.extend_from_slice(b"pong");
        assert!(d.wants_bytes());
        assert_eq!(next_layer_bytes(&mut d, &answer, split), b"pong");
        assert!(!d.wants_bytes());
    }
}

#[test]
fn lazy_dialer_refused_is_an_error() {
    let mut d = Multistream::dialer_lazy("/a".into()).unwrap();
    let r = d.handle_bytes(&cat(&[&msg(HEADER), b"\x03na\n"]));
    assert_eq!(r, Err(MultistreamError::LazyRefused("/a".into())));
    assert!(!d.wants_bytes());
}

#[test]
fn oversize_message_is_an_error() {
    let mut l = Multistream::listener(names(&["/a"])).unwrap();
    l.handle_bytes(&msg(HEADER)).unwrap();
    let mut big = Vec::new();
    varint::put(&mut big, MAX_MESSAGE_LEN as u64 + 1);
    assert_eq!(l.clone().handle_bytes(&big), Err(MultistreamError::Oversize));
    // A length prefix still unfinished after two bytes is at least 2^14: refused at once.
    assert_eq!(l.clone().handle_bytes(&[0x80, 0x80]), Err(MultistreamError::Oversize));
    // The longest allowed message is fine.
    let name = format!("/{}", "x".repeat(MAX_MESSAGE_LEN - 2));
    l.handle_bytes(&msg(&name)).unwrap();
    assert_eq!(l.poll_transmit().unwrap(), msg(HEADER).into_iter().chain(msg("na")).collect::<Vec<_>>());
}

#[test]
fn malformed_messages_are_errors() {
    let cases: [(&[u8], MultistreamError); 6] = [
        (b"\x03/a\xff", MultistreamError::Malformed("message does not end with a newline")),
        (b"\x03\xff\xfe\n", MultistreamError::Malformed("message is not UTF-8")),
        (b"\x03/\xc3\n", MultistreamError::Malformed("message is not UTF-8")),
        (b"\x00", MultistreamError::Malformed("message does not end with a newline")),
        (b"\x04abc\n", MultistreamError::Malformed("not a header, na, ls or protocol name")),
        (b"\x05/a\nb\n", MultistreamError::Malformed("not a header, na, ls or protocol name")),
    ];
    for (bytes, err) in cases {
        let mut l = Multistream::listener(names(&["/a"])).unwrap();
        l.handle_bytes(&msg(HEADER)).unwrap();
        assert_eq!(l.handle_bytes(bytes), Err(err), "{bytes:?}");
        assert_eq!(l.handle_bytes(&msg("/a")), Err(MultistreamError::Finished));
    }
}

#[test]
fn header_must_come_first_and_only_once() {
    let mut l = Multistream::listener(names(&["/a"])).unwrap();
    assert_eq!(l.handle_bytes(&msg("/a")), Err(MultistreamError::NoHeader));
    let mut l = Multistream::listener(names(&["/a"])).unwrap();
    let r = l.handle_bytes(&cat(&[&msg(HEADER), &msg(HEADER)]));
    assert_eq!(r, Err(MultistreamError::Unexpected(HEADER.into())));
    let mut d = Multistream::dialer(names(&["/a"])).unwrap();
    assert_eq!(d.handle_bytes(b"\x03na\n"), Err(MultistreamError::NoHeader));
}

#[test]
fn dialer_rejects_an_answer_it_did_not_ask_for() {
    let mut d = Multistream::dialer(names(&["/a", "/b"])).unwrap();
    let r = d.handle_bytes(&cat(&[&msg(HEADER), &msg("/b")]));
    assert_eq!(r, Err(MultistreamError::Unexpected("/b".into())));
    let mut d = Multistream::dialer(names(&["/a"])).unwrap();
    let r = d.handle_bytes(&cat(&[&msg(HEADER), b"\x03ls\n"]));
    assert_eq!(r, Err(MultistreamError::Unexpected("ls".into())));
}

#[test]
fn listener_gives_up_after_max_rounds() {
    let mut l = Multistream::listener(names(&["/a"])).unwrap();
    l.handle_bytes(&msg(HEADER)).unwrap();
    for _ in 0..MAX_ROUNDS {
        l.handle_bytes(&msg("/x")).unwrap();
    }
    assert_eq!(l.handle_bytes(&msg("/x")), Err(MultistreamError::TooManyRounds));
}

#[test]
fn constructors_check_names() {
    assert_eq!(Multistream::dialer(Vec::new()).unwrap_err(), MultistreamError::NoProtocols);
    for bad in ["a", "", "/a\nb", HEADER] {
        let err = MultistreamError::InvalidProtocol(bad.into());
        assert_eq!(Multistream::dialer(names(&[bad])).unwrap_err(), err);
        assert_eq!(Multistream::listener(names(&["/ok", bad])).unwrap_err(), err);
        assert_eq!(Multistream::dialer_lazy(bad.into()).unwrap_err(), err);
    }
    let long = format!("/{}", "x".repeat(MAX_MESSAGE_LEN - 1));
    assert!(Multistream::dialer(vec![long]).is_err());
}

proptest! {
    #[test]
    fn pair_agrees_in_any_split(
        splits in proptest::collection::vec(1usize..40, 1..8),
        refused in 0usize..4,
    ) {
        let mut proposals: Vec<String> = (0..refused).map(|i| format!("/no/{i}")).collect();
        proposals.push("/yes/1.0.0".into());
        let mut d = Multistream::dialer(proposals).unwrap();
        let mut l = Multistream::listener(names(&["/other", "/yes/1.0.0"])).unwrap();
        prop_assert_eq!(run_pair(&mut d, &mut l, &splits), vec![agreed("/yes/1.0.0", b"")]);
        prop_assert_eq!(events(&mut l), vec![agreed("/yes/1.0.0", b"")]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        splits in proptest::collection::vec(1usize..64, 1..8),
        prefix in any::<bool>(),
    ) {
        let mut input = if prefix { msg(HEADER) } else { Vec::new() };
        input.extend_from_slice(&bytes);
        for mut ms in [
            Multistream::dialer(names(&["/a", "/b"])).unwrap(),
            Multistream::dialer_lazy("/a".into()).unwrap(),
            Multistream::listener(names(&["/a"])).unwrap(),
        ] {
            let _ = feed(&mut ms, &input, &splits);
            while ms.poll_transmit().is_some() {}
            while ms.poll_event().is_some() {}
            prop_assert!(ms.partial.len() <= MAX_LEN_PREFIX + MAX_MESSAGE_LEN);
        }
    }
}
