//! The session state machine, message by message, without I/O.

use crate::message::{Message, id};
use crate::registry::{Registry, Vehicle};
use crate::session::{Action, Delivery, Directory, Session, Storing};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;

const NUMBER: &str = "13912345678";

struct Town {
    registry: Registry,
    codes: HashMap<String, String>,
}

impl Directory for Town {
    fn vehicle(&self, number: &str) -> Option<Arc<Vehicle>> {
        self.registry.get(number).cloned()
    }
    fn auth_code(&self, vehicle: &Vehicle) -> Option<String> {
        self.codes.get(&vehicle.terminal).cloned()
    }
}

fn town() -> Town {
    let registry = Registry::parse(
        &format!(
            "[[terminals]]\nnumber = \"{NUMBER}\"\ntenant = \"lucheng\"\nvehicle_id = \"VS-N-1\"\n\
             plate = \"京A12345\"\nrole = \"vaccine_shuttle\"\n"
        ),
        "test",
    )
    .unwrap();
    let codes = HashMap::from([(NUMBER.to_string(), "c0de".to_string())]);
    Town { registry, codes }
}

/// A 2013 message from `number` (BCD[6]); `split` is (count, index).
fn from(number: &str, msg_id: u16, serial: u16, body: &[u8], split: Option<(u16, u16)>) -> Message {
    let mut m = BytesMut::new();
    m.put_u16(msg_id);
    let mut properties = body.len() as u16;
    if split.is_some() {
        properties |= 1 << 13;
    }
    m.put_u16(properties);
    m.put_slice(&crate::wire::bcd_encode(number, 6));
    m.put_u16(serial);
    if let Some((count, index)) = split {
        m.put_u16(count);
        m.put_u16(index);
    }
    m.put_slice(body);
    Message::parse(m.freeze()).unwrap()
}

fn msg(msg_id: u16, serial: u16, body: &[u8]) -> Message {
    from(NUMBER, msg_id, serial, body, None)
}

/// A 0x0200 body at 2026-11-29 16:15:ss GMT+8; `status` 3 = ACC on, fixed.
fn location(status: u32, second: u8) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u32(0);
    b.put_u32(status);
    b.put_u32(39_901_234);
    b.put_u32(116_749_876);
    b.put_u16(31);
    b.put_u16(325);
    b.put_u16(87);
    let s = (second / 10) << 4 | (second % 10);
    b.put_slice(&[0x26, 0x11, 0x29, 0x16, 0x15, s]);
    b.put_slice(&[0x01, 4, 0, 2, 0xc8, 0x20]);
    b.to_vec()
}

fn batch(items: &[Vec<u8>]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u16(items.len() as u16);
    b.put_u8(1);
    for item in items {
        b.put_u16(item.len() as u16);
        b.put_slice(item);
    }
    b.to_vec()
}

/// The (reply serial, reply id, result) of a 0x8001.
fn general(answer: &Bytes) -> (u16, u16, u8) {
    let m = Message::parse(answer.clone()).unwrap();
    assert_eq!(m.header.id, id::PLATFORM_ANSWER);
    let b = &m.body;
    (
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
        b[4],
    )
}

fn sent(actions: &[Action]) -> &Bytes {
    match actions {
        [Action::Send(answer)] => answer,
        other => panic!("expected one answer, got {other:?}"),
    }
}

fn storing(actions: Vec<Action>) -> Storing {
    match actions.into_iter().next() {
        Some(Action::Store(storing)) => storing,
        other => panic!("expected events to store, got {other:?}"),
    }
}

fn authenticated(town: &Town) -> Session {
    let mut session = Session::new();
    let answer = session.handle(msg(id::AUTHENTICATE, 1, b"c0de"), town, 0);
    assert_eq!(general(sent(&answer)), (1, id::AUTHENTICATE, 0));
    session
}

#[test]
fn nothing_is_taken_before_authentication() {
    let town = town();
    let mut session = Session::new();
    for (msg_id, body) in [
        (id::LOCATION, location(3, 0)),
        (id::LOCATION_BATCH, batch(&[location(3, 0)])),
        (id::HEARTBEAT, vec![]),
        (id::LOGOUT, vec![]),
    ] {
        let actions = session.handle(msg(msg_id, 7, &body), &town, 0);
        assert_eq!(
            general(sent(&actions)),
            (7, msg_id, 1),
            "{msg_id:#06x}: fail"
        );
    }
    let wrong = session.handle(msg(id::AUTHENTICATE, 8, b"guess"), &town, 0);
    assert_eq!(general(sent(&wrong)), (8, id::AUTHENTICATE, 1));
    let actions = session.handle(msg(id::LOCATION, 9, &location(3, 0)), &town, 0);
    assert_eq!(general(sent(&actions)).2, 1, "still refused");
    assert!(session.vehicle().is_none());
    assert!(
        session
            .handle(msg(id::TERMINAL_ANSWER, 10, &[0; 5]), &town, 0)
            .is_empty()
    );
}

#[test]
fn registration_checks_the_registry_and_the_plate() {
    let town = town();
    let mut session = Session::new();
    let register = |plate: &[u8]| {
        let mut body = vec![0u8; 2 + 2 + 5 + 20 + 7];
        body.push(1);
        body.extend_from_slice(plate);
        body
    };
    let jing_a = [0xbe, 0xa9, b'A', b'1', b'2', b'3', b'4', b'5'];
    let unknown = from("13900000009", id::REGISTER, 3, &register(&jing_a), None);
    let actions = session.handle(unknown, &town, 0);
    let m = Message::parse(sent(&actions).clone()).unwrap();
    assert_eq!(m.header.id, id::REGISTER_ANSWER);
    assert_eq!(&m.body[..], &[0, 3, 2], "no such vehicle, no code");

    let mut wrong_plate = jing_a;
    wrong_plate[7] = b'9';
    let actions = session.handle(msg(id::REGISTER, 4, &register(&wrong_plate)), &town, 0);
    assert_eq!(
        &Message::parse(sent(&actions).clone()).unwrap().body[..],
        &[0, 4, 2]
    );

    let actions = session.handle(msg(id::REGISTER, 5, &register(&jing_a)), &town, 0);
    let Some(Action::Register(registering)) = actions.into_iter().next() else {
        panic!("a known terminal is registered")
    };
    assert_eq!(registering.vehicle.vehicle_id, "VS-N-1");
    let answer = session.registered(registering, "c0de");
    let m = Message::parse(answer).unwrap();
    assert_eq!(&m.body[..], b"\x00\x05\x00c0de");
}

#[test]
fn a_report_is_ok_only_once_stored() {
    let town = town();
    let mut session = authenticated(&town);
    for (delivery, result) in [
        (Delivery::Stored, 0),
        (Delivery::NotStored, 1),
        (Delivery::Rejected, 2),
    ] {
        let s = storing(session.handle(msg(id::LOCATION, 20, &location(3, 0)), &town, 0));
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.vehicle.tenant, "lucheng");
        let answer = session.stored(s, &[delivery]);
        assert_eq!(general(&answer), (20, id::LOCATION, result), "{delivery:?}");
    }
}

#[test]
fn reports_without_a_fix_are_answered_but_not_stored() {
    let town = town();
    let mut session = authenticated(&town);
    let actions = session.handle(msg(id::LOCATION, 21, &location(1, 0)), &town, 0);
    assert_eq!(general(sent(&actions)), (21, id::LOCATION, 0));
    let encrypted = session.handle(msg(id::LOCATION, 22, &location(0x23, 0)), &town, 0);
    assert_eq!(general(sent(&encrypted)).2, 3, "unsupported");
    let short = session.handle(msg(id::LOCATION, 23, &location(3, 0)[..20]), &town, 0);
    assert_eq!(general(sent(&short)).2, 2, "bad message");
}

#[test]
fn a_batch_keeps_each_items_time_and_counts_bad_items() {
    let town = town();
    let mut session = authenticated(&town);
    let body = batch(&[location(3, 1), location(1, 2), location(3, 3), vec![0; 5]]);
    let s = storing(session.handle(msg(id::LOCATION_BATCH, 30, &body), &town, 0));
    let seconds: Vec<i64> = s
        .events
        .iter()
        .map(|e| e.observed_at.as_ref().unwrap().seconds % 60)
        .collect();
    assert_eq!(seconds, [1, 3], "no-fix item skipped, each keeps its time");
    assert_ne!(s.events[0].event_id, s.events[1].event_id);
    let answer = session.stored(s, &[Delivery::Stored, Delivery::Stored]);
    assert_eq!(
        general(&answer),
        (30, id::LOCATION_BATCH, 2),
        "the bad item"
    );
}

#[test]
fn split_batches_are_confirmed_per_packet_and_retried_whole() {
    let town = town();
    let mut session = authenticated(&town);
    let body = batch(&[location(3, 1), location(3, 2)]);
    let (a, b) = body.split_at(30);
    let first = from(NUMBER, id::LOCATION_BATCH, 40, a, Some((2, 1)));
    let actions = session.handle(first, &town, 0);
    assert_eq!(
        general(sent(&actions)),
        (40, id::LOCATION_BATCH, 0),
        "packet 1 received"
    );
    let last = || from(NUMBER, id::LOCATION_BATCH, 41, b, Some((2, 2)));
    let s = storing(session.handle(last(), &town, 0));
    assert_eq!(s.events.len(), 2);
    let answer = session.stored(s, &[Delivery::Stored, Delivery::NotStored]);
    assert_eq!(general(&answer), (41, id::LOCATION_BATCH, 1));
    // The terminal resends the failed (last) packet: the batch is complete again.
    let again = storing(session.handle(last(), &town, 0));
    assert_eq!(again.events.len(), 2);
    // A split message of a kind the gateway does not reassemble.
    let other = from(NUMBER, 0x0801, 42, &[1, 2, 3], Some((3, 1)));
    assert_eq!(general(sent(&session.handle(other, &town, 0))).2, 3);
}

#[test]
fn heartbeat_time_unknown_ids_encryption_and_logout() {
    let town = town();
    let mut session = authenticated(&town);
    let hb = session.handle(msg(id::HEARTBEAT, 50, &[]), &town, 0);
    assert_eq!(general(sent(&hb)), (50, id::HEARTBEAT, 0));
    let time = session.handle(msg(id::QUERY_TIME, 51, &[]), &town, 1_795_940_100);
    let m = Message::parse(sent(&time).clone()).unwrap();
    assert_eq!(m.header.id, id::TIME_ANSWER);
    assert_eq!(&m.body[..], &[0x26, 0x11, 0x29, 0x08, 0x15, 0x00], "UTC");
    let unknown = session.handle(msg(0x0900, 52, &[1]), &town, 0);
    assert_eq!(general(sent(&unknown)), (52, 0x0900, 3));
    let mut encrypted = msg(id::HEARTBEAT, 53, &[]);
    encrypted.header.encryption = 1;
    assert_eq!(general(sent(&session.handle(encrypted, &town, 0))).2, 3);
    // Another terminal's number on this connection is not authenticated.
    let stranger = from("13900000009", id::HEARTBEAT, 54, &[], None);
    assert_eq!(general(sent(&session.handle(stranger, &town, 0))).2, 1);

    let logout = session.handle(msg(id::LOGOUT, 55, &[]), &town, 0);
    let [Action::Logout { vehicle, answer }] = &logout[..] else {
        panic!("{logout:?}")
    };
    assert_eq!(vehicle.terminal, NUMBER);
    assert_eq!(general(answer), (55, id::LOGOUT, 0));
    let after = session.handle(msg(id::LOCATION, 56, &location(3, 0)), &town, 0);
    assert_eq!(general(sent(&after)).2, 1, "refused after logout");
}
