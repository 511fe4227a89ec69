//! The lean request path of high-rate clients ([`PreparedRequest`],
//! [`Client::reencrypt_prepared`]): how it checks responses without keeping their cfrags, and
//! that it agrees with [`Client::reencrypt`] against a real server.

mod support;

use serde::Serialize;
use support::{spec_of, start_server, temp_dir};
use umbral_pre::{Capsule, CapsuleFrag, DefaultDeserialize};
use umbrald_client::{
    Alice, Bob, Client, ClientError, ClientOptions, PreparedRequest, ReencryptRequest,
    ReencryptSummary,
};
use umbrald_proto::{
    encode, ErrorCode, ItemResult, Policy, Response, WireError, CFRAG_PARTS_LEN, PROTOCOL_VERSION,
};

const CFRAG_LEN: usize = 381;

/// A request of `items` items under a policy that need not be real (nothing is parsed).
fn prepared(id: u64, items: usize, compact: bool) -> PreparedRequest {
    let policy = Policy {
        kfrag: vec![1; 310],
        delegating_pk: vec![2; 33],
        receiving_pk: vec![3; 33],
        verifying_pk: vec![4; 33],
    };
    let request = ReencryptRequest::new(policy, (0..items).map(|i| vec![i as u8; 105]));
    PreparedRequest::new(request, id, compact).expect("encode")
}

fn answer(id: u64, results: Vec<ItemResult>) -> Vec<u8> {
    encode(&Response {
        v: PROTOCOL_VERSION,
        id,
        results: Some(results),
        error: None,
    })
    .expect("encode")
}

fn unexpected(result: Result<ReencryptSummary, ClientError>) -> String {
    match result {
        Err(e @ ClientError::UnexpectedResponse(_)) => {
            assert_eq!(e.label(), "protocol");
            e.to_string()
        }
        other => panic!("expected an unexpected-response error, got {other:?}"),
    }
}

#[test]
fn the_prepared_bytes_are_the_request_with_its_id_and_compact_flag() {
    use umbrald_proto::{decode, Request};
    let request = ReencryptRequest::new(
        Policy {
            kfrag: vec![1; 310],
            delegating_pk: vec![2; 33],
            receiving_pk: vec![3; 33],
            verifying_pk: vec![4; 33],
        },
        [vec![5; 105], vec![6; 105]],
    )
    .with_deadline_ms(9)
    .with_priority(2);
    let p = PreparedRequest::new(request.clone(), 77, true).expect("encode");
    assert_eq!((p.id(), p.items(), p.compact_cfrags()), (77, 2, true));
    let sent: Request = decode(p.bytes()).expect("decode");
    assert_eq!(
        sent,
        Request {
            v: PROTOCOL_VERSION,
            id: 77,
            policies: request.policies.clone(),
            items: request.items.clone(),
            deadline_ms: Some(9),
            priority: Some(2),
            compact_cfrags: Some(true),
        }
    );
    let whole = PreparedRequest::new(request, 78, false).expect("encode");
    let sent: Request = decode(whole.bytes()).expect("decode");
    assert_eq!(sent.compact_cfrags, None);
    // Clones share the bytes.
    assert_eq!(whole.clone(), whole);
}

#[test]
fn good_answers_are_counted_whole_and_compact() {
    let whole = prepared(5, 3, false);
    let raw = answer(
        5,
        vec![
            ItemResult::ok(vec![1; CFRAG_LEN]),
            ItemResult::err(ErrorCode::InvalidCapsule, "bad point"),
            ItemResult::ok(vec![2; CFRAG_LEN]),
        ],
    );
    assert_eq!(
        whole.summarize(&raw).expect("ok"),
        ReencryptSummary {
            ok: 2,
            item_errors: vec!["invalid_capsule".to_owned()],
        }
    );

    // A compact request accepts parts, and whole cfrags from a server that predates them.
    let compact = prepared(6, 4, true);
    let raw = answer(
        6,
        vec![
            ItemResult::ok_parts(vec![1; CFRAG_PARTS_LEN]),
            ItemResult::ok(vec![1; CFRAG_LEN]),
            ItemResult::err(ErrorCode::DeadlineExceeded, "late"),
            ItemResult::err(ErrorCode::Internal, "oops"),
        ],
    );
    assert_eq!(
        compact.summarize(&raw).expect("ok"),
        ReencryptSummary {
            ok: 2,
            item_errors: vec!["deadline_exceeded".to_owned(), "internal".to_owned()],
        }
    );
    // An empty request answered with no results.
    assert_eq!(
        prepared(7, 0, true)
            .summarize(&answer(7, vec![]))
            .expect("ok"),
        ReencryptSummary::default()
    );
}

#[test]
fn mismatched_answers_are_typed_errors() {
    let p = prepared(5, 2, true);
    let two = || {
        vec![
            ItemResult::ok_parts(vec![1; CFRAG_PARTS_LEN]),
            ItemResult::ok_parts(vec![1; CFRAG_PARTS_LEN]),
        ]
    };
    assert!(unexpected(p.summarize(&answer(6, two()))).contains("response id 6"));
    let one = vec![ItemResult::ok_parts(vec![1; CFRAG_PARTS_LEN])];
    assert!(unexpected(p.summarize(&answer(5, one))).contains("1 results for 2 items"));
    let mut three = two();
    three.push(ItemResult::ok(vec![1; CFRAG_LEN]));
    assert!(unexpected(p.summarize(&answer(5, three))).contains("3 results"));

    let mut wrong_version = Response {
        v: PROTOCOL_VERSION,
        id: 5,
        results: Some(two()),
        error: None,
    };
    wrong_version.v = 2;
    assert!(
        unexpected(p.summarize(&encode(&wrong_version).expect("encode")))
            .contains("protocol version 2")
    );

    // Neither or both of results and error.
    let neither = Response {
        v: PROTOCOL_VERSION,
        id: 5,
        results: None,
        error: None,
    };
    unexpected(p.summarize(&encode(&neither).expect("encode")));
    let both = Response {
        results: Some(two()),
        error: Some(WireError::new(ErrorCode::Internal, "x")),
        ..neither
    };
    unexpected(p.summarize(&encode(&both).expect("encode")));
}

#[test]
fn each_result_must_be_exactly_one_thing_of_the_right_length() {
    let p = prepared(5, 2, true);
    let good = || ItemResult::ok_parts(vec![1; CFRAG_PARTS_LEN]);
    let bad_second = |bad: ItemResult| p.summarize(&answer(5, vec![good(), bad]));
    let error = || Some(WireError::new(ErrorCode::Internal, "x"));
    let cases = [
        (
            ItemResult {
                cfrag: None,
                parts: None,
                error: None,
            },
            "not exactly one",
        ),
        (
            ItemResult {
                cfrag: Some(vec![1; CFRAG_LEN]),
                parts: None,
                error: error(),
            },
            "not exactly one",
        ),
        (
            ItemResult {
                cfrag: Some(vec![1; CFRAG_LEN]),
                parts: Some(vec![1; CFRAG_PARTS_LEN]),
                error: None,
            },
            "not exactly one",
        ),
        (
            ItemResult {
                cfrag: None,
                parts: Some(vec![1; CFRAG_PARTS_LEN]),
                error: error(),
            },
            "not exactly one",
        ),
        (ItemResult::ok(vec![1; CFRAG_LEN - 1]), "cfrag of the wrong"),
        (ItemResult::ok(vec![1; CFRAG_LEN + 1]), "cfrag of the wrong"),
        (ItemResult::ok(vec![]), "cfrag of the wrong"),
        (
            ItemResult::ok_parts(vec![1; CFRAG_PARTS_LEN - 1]),
            "parts of the wrong",
        ),
        (
            ItemResult::ok_parts(vec![1; CFRAG_LEN]),
            "parts of the wrong",
        ),
    ];
    for (bad, why) in cases {
        let message = unexpected(bad_second(bad.clone()));
        assert!(
            message.contains("item 1") && message.contains(why),
            "{bad:?}: {message}"
        );
    }
    // Parts answer only a request that asked for them.
    let whole = prepared(5, 1, false);
    assert!(unexpected(whole.summarize(&answer(5, vec![good()]))).contains("compact"));
}

#[test]
fn a_request_level_error_is_the_servers_with_its_code() {
    let p = prepared(5, 3, true);
    for (id, code) in [(5, ErrorCode::Overloaded), (0, ErrorCode::Malformed)] {
        let raw = encode(&Response {
            v: PROTOCOL_VERSION,
            id,
            results: None,
            error: Some(WireError::new(code, "go away")),
        })
        .expect("encode");
        match p.summarize(&raw) {
            Err(ClientError::Server(e)) => {
                assert_eq!(
                    (e.code.as_str(), e.message.as_str()),
                    (code.as_str(), "go away")
                );
                assert_eq!(ClientError::Server(e).label(), code.as_str());
            }
            other => panic!("expected a server error, got {other:?}"),
        }
    }
    // Another request's id with an error is still a mismatch.
    let raw = encode(&Response {
        v: PROTOCOL_VERSION,
        id: 9,
        results: None,
        error: Some(WireError::new(ErrorCode::Overloaded, "go away")),
    })
    .expect("encode");
    unexpected(p.summarize(&raw));
}

#[test]
fn garbage_is_a_protocol_error_never_a_panic() {
    let p = prepared(5, 2, true);
    let good = answer(
        5,
        vec![
            ItemResult::ok_parts(vec![1; CFRAG_PARTS_LEN]),
            ItemResult::err(ErrorCode::InvalidCapsule, "bad"),
        ],
    );
    assert!(p.summarize(&good).is_ok());
    // Every truncation of a good answer, and a few byte strings that are not answers.
    let mut inputs: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    inputs.extend([
        vec![0xc1],
        vec![0xff; 64],
        b"not msgpack at all".to_vec(),
        vec![0x90],                         // an empty array
        vec![0xdd, 0xff, 0xff, 0xff, 0xff], // an array claiming 4 G elements
    ]);
    // Flipping each byte of a good answer gives an error or some other valid summary.
    for i in 0..good.len() {
        let mut flipped = good.clone();
        flipped[i] ^= 0x5a;
        let _ = p.summarize(&flipped);
    }
    for input in inputs {
        match p.summarize(&input) {
            Err(e @ (ClientError::Proto(_) | ClientError::UnexpectedResponse(_))) => {
                assert_eq!(e.label(), "protocol")
            }
            other => panic!("{input:02x?}: expected a protocol error, got {other:?}"),
        }
    }

    // Well-formed MessagePack of the wrong shape.
    #[derive(Serialize)]
    struct Shaped<R: Serialize> {
        v: u32,
        id: u64,
        results: R,
    }
    let map = |key: &'static str, value: u32| std::collections::BTreeMap::from([(key, value)]);
    let wrong_shapes = [
        encode(&Shaped {
            v: 1,
            id: 5,
            results: "two results",
        })
        .expect("encode"),
        encode(&Shaped {
            v: 1,
            id: 5,
            results: [1u8, 2],
        })
        .expect("encode"),
        encode(&Shaped {
            v: 1,
            id: 5,
            results: [map("cfrag", 7), map("parts", 8)],
        })
        .expect("encode"),
        encode(&Shaped {
            v: 1,
            id: 5,
            results: [map("error", 7), map("error", 8)],
        })
        .expect("encode"),
        encode(&Shaped {
            v: 1,
            id: 5,
            results: [[("cfrag", "a str")]],
        })
        .expect("encode"),
    ];
    for raw in wrong_shapes {
        let result = p.summarize(&raw);
        assert!(
            matches!(
                result,
                Err(ClientError::Proto(_) | ClientError::UnexpectedResponse(_))
            ),
            "{raw:02x?}: {result:?}"
        );
    }
}

/// Against a real server: every item of a prepared request is answered, whole and compact,
/// again and again, and the same request through `reencrypt` gives cfrags that verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_requests_are_answered_by_a_real_server() {
    let dir = temp_dir("prepared");
    let server = start_server(&dir).await;
    let spec = spec_of(&server);
    let (alice, bob) = (Alice::random(), Bob::random());
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let policy = grant.policy(0).expect("policy");
    let capsules: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            alice
                .encrypt(format!("m{i}").as_bytes())
                .expect("encrypt")
                .capsule_bytes()
                .expect("bytes")
        })
        .collect();
    let request = ReencryptRequest::new(policy, capsules.clone());

    for compact_cfrags in [true, false] {
        let options = ClientOptions {
            compact_cfrags,
            ..ClientOptions::default()
        };
        let client = Client::connect_with(spec.addr, &spec.trust, options)
            .await
            .expect("connect");
        let prepared = client.prepare(request.clone()).expect("prepare");
        assert_eq!(prepared.compact_cfrags(), compact_cfrags);
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (client, prepared) = (client.clone(), prepared.clone());
            tasks.push(tokio::spawn(async move {
                client.reencrypt_prepared(&prepared).await
            }));
        }
        for task in tasks {
            let summary = task.await.expect("task").expect("answered");
            assert_eq!(
                summary,
                ReencryptSummary {
                    ok: capsules.len(),
                    item_errors: vec![],
                }
            );
        }

        // The same request, the old way: cfrags that verify.
        let outcomes = client.reencrypt(request.clone()).await.expect("answered");
        assert_eq!(outcomes.len(), capsules.len());
        for (outcome, capsule) in outcomes.into_iter().zip(&capsules) {
            let cfrag = outcome.expect("cfrag");
            CapsuleFrag::from_bytes(&cfrag)
                .expect("parses")
                .verify(
                    &Capsule::from_bytes(capsule).expect("capsule"),
                    &grant.verifying_pk,
                    &grant.delegating_pk,
                    &grant.receiving_pk,
                )
                .expect("verifies");
        }

        // Item errors come back as codes.
        let mixed = ReencryptRequest::new(
            grant.policy(0).expect("policy"),
            [capsules[0].clone(), vec![0xff; 105]],
        );
        let summary = client
            .reencrypt_prepared(&client.prepare(mixed).expect("prepare"))
            .await
            .expect("answered");
        assert_eq!(
            summary,
            ReencryptSummary {
                ok: 1,
                item_errors: vec!["invalid_capsule".to_owned()],
            }
        );
        client.close();
    }
    server.shutdown().await;
}
