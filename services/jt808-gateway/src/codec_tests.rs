//! The codec, the headers and the bodies against frames published by
//! others. Every golden frame names its source: SmallChi/JT808 (MIT, a
//! widely used .NET JT/T 808 library; commit c9552b0), whose tests build and
//! parse these frames independently of this code.

use crate::body::{self, status};
use crate::codec::{FrameCodec, FrameError};
use crate::message::{Message, RegisterResult, Replier, ResultCode, Split, Version, id};
use crate::split::{Limits, Reassembler};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Feeds `chunks` to one decoder as separate reads, then ends the stream.
fn decode(chunks: &[&[u8]]) -> Vec<Result<Bytes, FrameError>> {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
    }
    while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
        out.push(item);
    }
    out
}

fn message(frame: &[u8]) -> Message {
    let mut items = decode(&[frame]);
    assert_eq!(items.len(), 1, "{items:?}");
    Message::parse(items.remove(0).expect("a valid frame")).expect("a valid header")
}

fn encode(message: Bytes) -> Vec<u8> {
    let mut dst = BytesMut::new();
    FrameCodec::default().encode(message, &mut dst).unwrap();
    dst.to_vec()
}

/// SmallChi/JT808 README.md, "举个栗子1": a 0x0200 whose serial (126 = 0x7E)
/// and whose add-on 0x02 value (0x7D) are both escaped.
const README_0200: &str = "7E 02 00 00 26 12 34 56 78 90 12 00 7D 02 00 00 00 01 00 00 00 02 00 BA 7F 0E \
    07 E4 F1 1C 00 28 00 3C 00 00 18 10 15 10 10 10 01 04 00 00 00 64 02 02 00 7D 01 13 7E";

#[test]
fn the_readme_location_frame_decodes_with_both_escapes() {
    let m = message(&hex(README_0200));
    let h = &m.header;
    assert_eq!((h.id, h.version, h.serial), (0x0200, Version::V2013, 126));
    assert_eq!(h.terminal.digits(), "123456789012");
    assert_eq!((h.encryption, h.split), (0, None));
    assert_eq!(m.body.len(), 38);
    let loc = body::location(&m.body).unwrap();
    assert_eq!((loc.alarm, loc.status), (1, 2));
    assert_eq!((loc.latitude, loc.longitude), (12_222_222, 132_444_444));
    assert_eq!((loc.altitude, loc.speed, loc.direction), (40, 60, 0));
    assert_eq!(loc.time, [0x18, 0x10, 0x15, 0x10, 0x10, 0x10]);
    assert_eq!(loc.mileage, Some(100), "add-on 0x01; 0x02 (oil) is skipped");
    // Re-encoding gives the published bytes: checksum, then escaping.
    let unescaped = decode(&[&hex(README_0200)]).remove(0).unwrap();
    assert_eq!(encode(unescaped), hex(README_0200));
}

/// SmallChi/JT808 README.md, "举个栗子2": the same report with serial 1.
#[test]
fn the_second_readme_frame_has_its_own_checksum() {
    let frame = hex(
        "7E 02 00 00 26 12 34 56 78 90 12 00 01 00 00 00 01 00 00 00 02 00 BA 7F 0E 07 E4 F1 1C \
         00 28 00 3C 00 00 18 10 15 10 10 10 01 04 00 00 00 64 02 02 00 7D 01 6C 7E",
    );
    assert_eq!(message(&frame).header.serial, 1);
}

/// SmallChi/JT808 src/JT808.Protocol.Test/MessageBody/JT808_0x0100Test.cs,
/// Test1_1 (2013) and Test2019_2 (2019): registration with a GBK plate.
#[test]
fn registrations_of_both_versions() {
    let m = message(&hex(
        "7E 01 00 00 2D 00 01 23 45 67 89 00 0A 00 28 00 32 31 32 33 34 30 73 6D 61 6C 6C 63 68 69 \
         31 32 33 30 30 30 30 30 30 30 30 30 43 48 49 31 32 33 30 01 D4 C1 41 31 32 33 34 35 BA 7E",
    ));
    assert_eq!(
        (m.header.id, m.header.version, m.header.serial),
        (0x0100, Version::V2013, 10)
    );
    assert_eq!(m.header.terminal.number(), "123456789");
    let r = body::registration(&m.body, m.header.version).unwrap();
    assert_eq!((r.province, r.city, r.plate_color), (40, 50, 1));
    assert_eq!(r.manufacturer, "12340");
    assert_eq!(r.model, "smallchi123000000000");
    assert_eq!(r.terminal_id, "CHI1230");
    assert_eq!(r.plate, "粤A12345");

    let m = message(&hex(
        "7E010040540100000000000123456789000A00280032303030303030303132333430303030303030303030303030\
         303030303030736D616C6C63686931323330303030303030303030303030303030303030303030303043484931\
         323301D4C1413132333435B27E",
    ));
    assert_eq!(m.header.version, Version::V2019 { protocol: 1 });
    assert_eq!(m.header.terminal.digits(), "00000000000123456789");
    assert_eq!(m.header.terminal.number(), "123456789");
    assert_eq!(m.header.serial, 10);
    let r = body::registration(&m.body, m.header.version).unwrap();
    assert_eq!(r.manufacturer, "00000001234");
    assert_eq!(r.terminal_id, format!("{:0>30}", "CHI123"));
    assert_eq!(r.plate, "粤A12345");
}

/// SmallChi/JT808 JT808_0x0102Test.cs: Test4 (a 2013 frame) and
/// Test2019_2 (a 2019 body: length, code, IMEI, software version).
#[test]
fn authentications_of_both_versions() {
    let m = message(&hex(
        "7E 01 02 00 09 01 23 45 67 89 00 30 39 34 35 36 31 32 31 31 31 31 BE 7E",
    ));
    assert_eq!((m.header.id, m.header.serial), (0x0102, 12345));
    assert_eq!(m.header.terminal.number(), "12345678900");
    let auth = body::authentication(&m.body, m.header.version).unwrap();
    assert_eq!(auth.code, "456121111");

    let body_2019 =
        hex("05343536313231323334353637383930616263646576322E302E300000000000000000000000000000");
    let auth = body::authentication(&body_2019, Version::V2019 { protocol: 1 }).unwrap();
    assert_eq!(auth.code, "45612");
    assert_eq!(auth.imei.as_deref(), Some("1234567890abcde"));
    assert_eq!(auth.software_version.as_deref(), Some("v2.0.0"));
}

/// SmallChi/JT808 JT808_0x0200Test.cs Test5_3: a real 2013 terminal that
/// sets bit 14 (reserved in 2013; SmallChi reads it with `JTT2013Force`).
/// Only a 2013 header makes its length add up.
#[test]
fn a_2013_terminal_setting_the_version_bit_is_read_as_2013() {
    let m = message(&hex(
        "7E0102400C01003000068109024A3130303330303030363831857E",
    ));
    assert_eq!(m.header.version, Version::V2013);
    assert_eq!(m.header.terminal.digits(), "010030000681");
    assert_eq!(m.header.serial, 0x0902);
    let auth = body::authentication(&m.body, m.header.version).unwrap();
    assert_eq!(auth.code, "J10030000681");
}

/// SmallChi/JT808 src/JT808.Protocol.Extensions/JT808.Protocol.Extensions.
/// JT1078.Test/JT808_0x0200Test.cs, line 137 (InlineData): a 2019 report
/// with fourteen add-on items, most of them unknown here.
#[test]
fn a_2019_location_skips_unknown_add_ons() {
    let m = message(&hex(
        "7e020040600100000000653695850003022a00000000000c000300145b2206312b7a002e0000000024070211\
         42520104000001c404020000030200001404000000041504000000001604000000001702000218030000001904\
         000000002504000000002b0400000000300100310119520100c57e",
    ));
    assert_eq!(m.header.version, Version::V2019 { protocol: 1 });
    assert_eq!(
        (m.header.terminal.number(), m.header.serial),
        ("653695850003", 0x022a)
    );
    let loc = body::location(&m.body).unwrap();
    assert_eq!(loc.status, 0x000c_0003);
    assert_eq!(
        (loc.latitude, loc.longitude, loc.altitude),
        (1_334_050, 103_885_690, 46)
    );
    assert_eq!(loc.time, [0x24, 0x07, 0x02, 0x11, 0x42, 0x52]);
    assert_eq!(
        (loc.mileage, loc.signal, loc.satellites),
        (Some(452), Some(0), Some(25))
    );
}

/// The same file, line 121: a 2019 report without a GNSS fix (status bit 1
/// clear); its longitude holds an escaped 0x7D.
#[test]
fn a_2019_location_without_a_fix() {
    let m = message(&hex(
        "7e020040420100000000013419905507021200040000001410010213679206c4a97d01001300000002220720\
         103957010400000e3e020200000302025825040000001030014531010814040000000115040000000c797e",
    ));
    let loc = body::location(&m.body).unwrap();
    assert_eq!(loc.status & status::FIXED, 0);
    assert_eq!(loc.longitude, 0x06c4_a97d);
    assert_eq!(
        (loc.mileage, loc.signal, loc.satellites),
        (Some(0x0e3e), Some(0x45), Some(8))
    );
}

/// SmallChi/JT808 JT808_0x0704Test.cs Test2: a batch of two (the second
/// without a fix: status 1).
#[test]
fn a_location_batch() {
    let m = message(&hex(
        "7E 07 04 00 53 11 22 33 44 55 66 22 B8 00 02 00 00 26 00 00 00 01 00 00 00 02 00 BA 7F 0E \
         07 E4 F1 1C 00 28 00 3C 00 00 18 07 15 10 10 10 01 04 00 00 00 64 02 02 00 37 00 26 00 00 \
         00 02 00 00 00 01 00 CB 73 55 07 E6 A3 23 00 29 00 36 00 78 18 07 15 10 10 30 01 04 00 00 \
         00 60 02 02 00 42 D4 7E",
    ));
    assert_eq!((m.header.id, m.header.serial), (0x0704, 8888));
    let batch = body::batch(&m.body).unwrap();
    assert_eq!((batch.kind, batch.items.len()), (0, 2));
    let second = batch.items[1].as_ref().unwrap();
    assert_eq!(
        (second.latitude, second.longitude),
        (13_333_333, 132_555_555)
    );
    assert_eq!(
        (second.speed, second.direction, second.status),
        (54, 120, 1)
    );
    assert_eq!(second.time, [0x18, 0x07, 0x15, 0x10, 0x10, 0x30]);
    assert_eq!(second.mileage, Some(96));
}

/// SmallChi/JT808 JT808SerializerTest.cs MergerTest: a terminal's 0x0104
/// answer split in two packets (count 2, serials 0x00D1 and 0x00E2).
#[test]
fn published_split_packets_reassemble() {
    let first = message(&hex(SPLIT_0104_PACKET_1));
    let second = message(&hex(SPLIT_0104_PACKET_2));
    assert_eq!(first.header.split, Some(Split { count: 2, index: 1 }));
    assert_eq!(second.header.split, Some(Split { count: 2, index: 2 }));
    assert_eq!(first.header.terminal.digits(), "011275400381");
    assert_eq!((first.body.len(), second.body.len()), (1008, 211));
    let mut r = Reassembler::new(Limits::default());
    // In reverse order, to show that the index places them.
    let push = |r: &mut Reassembler, m: &Message| {
        let s = m.header.split.unwrap();
        r.push(
            m.header.id,
            s.count,
            s.index,
            m.header.serial,
            m.body.clone(),
        )
    };
    assert!(push(&mut r, &second).unwrap().is_none());
    let whole = push(&mut r, &first).unwrap().expect("complete");
    let body = whole.body();
    assert_eq!(body.len(), 1219);
    // 0x0104: reply serial 0, then 0x6B (107) parameters.
    assert_eq!(&body[..3], &[0x00, 0x00, 0x6b]);
}

/// SmallChi/JT808 src/JT808.Protocol.Test/Simples/Demo5.cs, `bytes10`: the
/// last packet of a split 0x0801. That demo sets `SkipCRCCode = true`; the
/// frame's checksum is indeed wrong, and this codec says so.
#[test]
fn a_published_frame_with_a_wrong_checksum_is_refused() {
    let frame =
        hex("7e08012017013812345678203c000a000ad4dea2f72e50269b5a1ca251400a2ad427e5a4ca47ffd9d17e");
    assert_eq!(
        decode(&[&frame]),
        vec![Err(FrameError::Checksum {
            received: 0xd1,
            computed: 0x43
        })]
    );
}

/// SmallChi/JT808 JT808_0x8001Test.cs Test1 and JT808_0x8100Test.cs Test1
/// and Test3: the platform's answers, byte for byte.
#[test]
fn answers_match_the_published_frames() {
    // A terminal header for 012345678900, to answer in its form.
    let request = message(&hex(
        "7E 01 02 00 09 01 23 45 67 89 00 30 39 34 35 36 31 32 31 31 31 31 BE 7E",
    ));
    let mut replier = Replier::new(&request.header);
    for _ in 0..10 {
        replier.general(0, 0, ResultCode::Ok);
    }
    let general = replier.general(id::LOCATION, 100, ResultCode::Ok);
    assert_eq!(
        encode(general),
        hex("7E80010005012345678900000A0064020000617E")
    );

    let mut replier = Replier::new(&request.header);
    for _ in 0..10 {
        replier.general(0, 0, ResultCode::Ok);
    }
    let mut failed = replier.clone();
    let ok = replier.register(100, RegisterResult::Ok, Some("123456"));
    assert_eq!(
        encode(ok),
        hex("7E81000009012345678900000A006400313233343536687E")
    );
    let refused = failed.register(100, RegisterResult::NoSuchTerminal, Some("ignored"));
    assert_eq!(encode(refused), hex("7E81000003012345678900000A006404617E"));
}

#[test]
fn answers_to_a_2019_terminal_use_its_header() {
    let request = message(&hex(
        "7e020040420100000000013419905507021200040000001410010213679206c4a97d01001300000002220720\
         103957010400000e3e020200000302025825040000001030014531010814040000000115040000000c797e",
    ));
    let answer = Replier::new(&request.header).general(0x0200, 0x0212, ResultCode::Fail);
    let parsed = Message::parse(answer).unwrap();
    assert_eq!(parsed.header.id, id::PLATFORM_ANSWER);
    assert_eq!(parsed.header.version, Version::V2019 { protocol: 1 });
    assert_eq!(parsed.header.terminal.digits(), "00000000013419905507");
    assert_eq!(&parsed.body[..], &[0x02, 0x12, 0x02, 0x00, 0x01]);
}

const SPLIT_0104_PACKET_1: &str = "\
    7E010423F001127540038104D10002000100006B00000001040000025800000002040000000A000000030400\
    00000500000004040000000A0000000504000000050000000604000000000000000704000000000000001005\
    434D4E455400000011000000001200000000130D3232322E3138342E32362E32320000001400000000150000\
    0000160000000017000000001804000007E50000001904000007E50000002304000000000000002404000000\
    000000002504000000000000002604000000000000003204000005000000001A000000001B04000000000000\
    001C04000000000000001D0000000020040000000000000021040000000000000022040000012C0000002704\
    00001C2000000028040000001E00000029040000001E0000002C04000001F40000002D04000001F40000002E\
    04000001F40000002F04000000C800000030040000001E000000310201F40000004000000000410000000042\
    00000000430000000044000000004504000000010000004604FFFFFFFF0000004704FFFFFFFF000000480000\
    0000490000000050040363160800000051040000000000000052040000000100000053040000000000000054\
    040000000000000055040000000000000056040000001E000000570400003840000000580400007080000000\
    5904000004B00000005A0400000E100000005B0200000000005C0207080000005D0224000000005E02001E00\
    000064040000010100000065040000000000000070040000000500000071040000007F000000720400000040\
    00000073040000004000000074040000007F00000080040004B9930000008102000000000082020000000000\
    830CB2E2CAD4CAD3C6B5B3B5C1BE000000840100000000900103000000910101000000920100000000930400\
    0000010000009401000000009504000000000000010004000000000000010102000000000102040000000000\
    0001030200000000C11204000000050000C11304000000050000C11404000000030000C11504000000000000\
    C1160200000000C1170200000000C118033200030000C119030000000000CB00040000000200000075150103\
    001E0F00000100000300191900000400002B00000000761B0500010101000002020000030300000404000005\
    0500000606020000000077A908010103001E0F00000100000300191900000400002B020103001E0F00000100\
    000300191900000400002B030103001E0F00000100000300191900000400002B040103001E0F000001000003\
    00191900000400002B050103001E0F00000100000300191900000400002B060103001E0F0000010000030019\
    1900000400002B070103001E0F00000100000300191900000400002B080103001E0F00000100000300191900\
    000400002B0000007903140501C17E";
const SPLIT_0104_PACKET_2: &str = "\
    7E010420D301127540038104E2000200020000007A04000000000000007B0200000000007C14000000000000\
    00000000000000000000000000000000F364381E06000E1007D003020101FFFFFFFFFFFFFFFFFF0000000302\
    000000060302320503021B320503021E320503020A320503020302FFFFFFFF0000F365311E06000E1007D003\
    020101FFFFFFFF00000007012C0078FFFFFF320503023205030232050302320503023205030200FFFF0000FF\
    010537303231380000FF02144B352D50000000000000000000000000000000000000F373040BB80BB80000FF\
    0006FEEA4C0510BD1F7E";

#[test]
fn encoded_locations_read_back() {
    let m = message(&hex(README_0200));
    let mut loc = body::location(&m.body).unwrap();
    loc.signal = Some(21);
    loc.satellites = Some(9);
    let encoded = body::encode_location(&loc);
    assert_eq!(body::location(&encoded).unwrap(), loc);
    // The basic block is the published one byte for byte.
    assert_eq!(encoded[..28], m.body[..28]);
    let batch = body::batch(&body::encode_batch(1, &[encoded.clone(), encoded])).unwrap();
    assert_eq!((batch.kind, batch.items.len()), (1, 2));
    assert_eq!(batch.items[1].as_ref().unwrap(), &loc);
}
