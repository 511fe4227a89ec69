//! The client library against a real server on loopback: threshold retrieval with a down node
//! and a lying node, pipelining, reconnection, both trust modes and mutual TLS.

mod support;

use std::time::{Duration, Instant};

use support::{dead_addr, fake_node, spec_of, start_server, temp_dir, Behaviour};
use umbrald_client::{
    Alice, Bob, Client, ClientError, ClientIdentity, ClientOptions, Fingerprint, NodeFailureKind,
    NodeSpec, ReencryptRequest, ThresholdClient, ThresholdError, Trust,
};

/// A fresh 1-of-1 policy and one valid capsule's bytes.
fn policy_and_capsule() -> (umbrald_proto::Policy, Vec<u8>) {
    let (alice, bob) = (Alice::random(), Bob::random());
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let policy = grant.policy(0).expect("policy");
    let capsule = alice
        .encrypt(b"m")
        .expect("encrypt")
        .capsule_bytes()
        .expect("bytes");
    (policy, capsule)
}

fn options(connect_timeout: Duration) -> ClientOptions {
    ClientOptions {
        connect_timeout,
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_retrieval_survives_a_down_node_and_reports_a_lying_one() {
    let dir = temp_dir("threshold");
    let server = start_server(&dir).await;
    // Honest nodes answer after 300 ms, the liar at once: it is always heard before the
    // threshold is met, so its report is deterministic.
    let honest = Behaviour {
        delay: Duration::from_millis(300),
        tamper: false,
    };
    let liar = Behaviour {
        delay: Duration::ZERO,
        tamper: true,
    };
    let (good0, bad, good3) = (
        fake_node(&server, honest),
        fake_node(&server, liar),
        fake_node(&server, honest),
    );
    let down = NodeSpec {
        addr: dead_addr(),
        trust: Trust::Fingerprint(Fingerprint([7; 32])),
    };
    let nodes = vec![
        good0.spec.clone(),
        down,
        bad.spec.clone(),
        good3.spec.clone(),
    ];

    let (alice, bob) = (Alice::random(), Bob::random());
    let sealed = alice.encrypt(b"split-key secret").expect("encrypt");
    let grant = alice.grant(&bob.public_key(), 2, 4).expect("grant");
    // The down node's handshake would take the full 3 s timeout: the retrieval must not wait.
    let appliances =
        ThresholdClient::new(&nodes, &options(Duration::from_secs(3))).expect("clients");

    let started = Instant::now();
    let retrieval = appliances
        .retrieve(&grant, &sealed.capsule)
        .await
        .expect("threshold met");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "held back by the down node: {took:?}"
    );

    let mut contributors = retrieval.contributors.clone();
    contributors.sort_unstable();
    assert_eq!(contributors, vec![0, 3]);
    assert_eq!(retrieval.failures.len(), 1, "{:?}", retrieval.failures);
    let failure = &retrieval.failures[0];
    assert_eq!(failure.node, 2);
    assert_eq!(failure.addr, bad.spec.addr);
    assert!(
        matches!(failure.kind, NodeFailureKind::Invalid(_)),
        "{failure}"
    );
    assert!(failure.kind.is_misbehaviour());
    assert_eq!(retrieval.pending, vec![1]);

    let plaintext = bob
        .decrypt(&grant, &sealed, retrieval.cfrags)
        .expect("decrypts");
    assert_eq!(&*plaintext, b"split-key secret");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_out_of_reach_fails_fast_with_every_failure() {
    let dir = temp_dir("not-enough");
    let server = start_server(&dir).await;
    let bad = fake_node(
        &server,
        Behaviour {
            delay: Duration::ZERO,
            tamper: true,
        },
    );
    let down = NodeSpec {
        addr: dead_addr(),
        trust: Trust::Fingerprint(Fingerprint([7; 32])),
    };
    let nodes = vec![spec_of(&server), down, bad.spec.clone()];
    let (alice, bob) = (Alice::random(), Bob::random());
    let sealed = alice.encrypt(b"x").expect("encrypt");
    let grant = alice.grant(&bob.public_key(), 2, 3).expect("grant");
    let appliances =
        ThresholdClient::new(&nodes, &options(Duration::from_millis(500))).expect("clients");

    let err = appliances
        .retrieve(&grant, &sealed.capsule)
        .await
        .expect_err("only one good node");
    let ThresholdError::NotEnough {
        needed,
        got,
        failures,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*needed, *got), (2, 1));
    let mut failed: Vec<usize> = failures.iter().map(|f| f.node).collect();
    failed.sort_unstable();
    assert_eq!(failed, vec![1, 2]);
    assert!(failures
        .iter()
        .any(|f| f.node == 1 && matches!(f.kind, NodeFailureKind::Request(_))));
    assert!(failures
        .iter()
        .any(|f| f.node == 2 && f.kind.is_misbehaviour()));
    assert!(err.to_string().contains("only 1 of the 2"), "{err}");

    // A grant for a different number of nodes is refused before any request.
    let wrong = alice.grant(&bob.public_key(), 1, 2).expect("grant");
    assert!(matches!(
        appliances.retrieve(&wrong, &sealed.capsule).await,
        Err(ThresholdError::NodeCountMismatch {
            kfrags: 2,
            nodes: 3
        })
    ));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_share_one_connection_and_report_item_errors() {
    let dir = temp_dir("pipeline");
    let server = start_server(&dir).await;
    let spec = spec_of(&server);
    let client = Client::connect(spec.addr, spec.trust.clone())
        .await
        .expect("connect");
    let (policy, capsule) = policy_and_capsule();

    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        let request = ReencryptRequest::new(policy.clone(), [capsule.clone(), vec![0xff; 105]]);
        tasks.push(tokio::spawn(async move { client.reencrypt(request).await }));
    }
    for task in tasks {
        let outcomes = task.await.expect("task").expect("request answered");
        assert_eq!(outcomes.len(), 2);
        assert_eq!(outcomes[0].as_ref().map(Vec::len), Ok(381));
        let item_error = outcomes[1].as_ref().expect_err("garbage capsule");
        assert_eq!(item_error.code, "invalid_capsule");
    }
    assert_eq!(client.handshake_times().len(), 1, "all on one connection");
    server.shutdown().await;
}

/// With QUIC fair queuing off on both sides (`[server] quic_send_fairness = false`,
/// `ClientOptions::send_fairness = false`), concurrent requests and answers of several packets
/// each still arrive whole on one connection, and a retrieval through them decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_arrive_whole_without_fair_queuing() {
    let dir = temp_dir("fifo-streams");
    let mut config = umbrald_server::Config::ephemeral(&dir, 1);
    config.server.quic_send_fairness = false;
    let server = umbrald_server::Server::start(config, None)
        .await
        .expect("server starts");
    let spec = spec_of(&server);
    let fifo = ClientOptions {
        send_fairness: false,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(spec.addr, &spec.trust, fifo.clone())
        .await
        .expect("connect");
    let (policy, capsule) = policy_and_capsule();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let request = ReencryptRequest::new(policy.clone(), vec![capsule.clone(); 24]);
            tokio::spawn(async move { client.reencrypt(request).await })
        })
        .collect();
    for task in tasks {
        let outcomes = task.await.expect("task").expect("request answered");
        assert_eq!(outcomes.len(), 24);
        assert!(outcomes.iter().all(|o| o.as_ref().map(Vec::len) == Ok(381)));
    }
    assert_eq!(client.handshake_times().len(), 1, "all on one connection");

    let (alice, bob) = (Alice::random(), Bob::random());
    let sealed = alice.encrypt(b"one stream after another").expect("encrypt");
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let appliances = ThresholdClient::new(std::slice::from_ref(&spec), &fifo).expect("clients");
    let retrieval = appliances
        .retrieve(&grant, &sealed.capsule)
        .await
        .expect("threshold met");
    let plaintext = bob
        .decrypt(&grant, &sealed, retrieval.cfrags)
        .expect("decrypts");
    assert_eq!(&*plaintext, b"one stream after another");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_clients_bound_are_refused_and_the_rest_read_whole() {
    let dir = temp_dir("response-bound");
    let server = start_server(&dir).await;
    let spec = spec_of(&server);
    let (policy, capsule) = policy_and_capsule();
    let request = || ReencryptRequest::new(policy.clone(), vec![capsule.clone(); 64]);
    // 64 cfrags of 381 bytes arrive in many QUIC frames: all of them, in order.
    let client = Client::connect(spec.addr, spec.trust.clone())
        .await
        .expect("connect");
    let outcomes = client.reencrypt(request()).await.expect("answered");
    assert_eq!(outcomes.len(), 64);
    assert!(outcomes.iter().all(|o| o.as_ref().map(Vec::len) == Ok(381)));
    // Asked for whole cfrags instead of the (default) compact form: the same kfrag-derived
    // fields (id and precursor, commitment, signature for the receiver) in both.
    let whole = ClientOptions {
        compact_cfrags: false,
        ..ClientOptions::default()
    };
    let whole = Client::connect_with(spec.addr, &spec.trust, whole)
        .await
        .expect("connect");
    let whole = whole.reencrypt(request()).await.expect("answered");
    let kfrag_fields = |cfrag: &[u8]| {
        [
            cfrag[71..140].to_vec(),
            cfrag[211..246].to_vec(),
            cfrag[315..].to_vec(),
        ]
    };
    for (a, b) in outcomes.iter().zip(&whole) {
        let (a, b) = (a.as_ref().expect("cfrag"), b.as_ref().expect("cfrag"));
        assert_eq!(b.len(), 381);
        assert_eq!(kfrag_fields(a), kfrag_fields(b));
        assert_ne!(a, b, "fresh nonces");
    }
    let small = ClientOptions {
        max_response_bytes: 4096,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(spec.addr, &spec.trust, small)
        .await
        .expect("connect");
    match client.reencrypt(request()).await {
        Err(ClientError::ResponseTooLarge(4096)) => {}
        other => panic!("expected ResponseTooLarge(4096), got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_restarts() {
    let dir = temp_dir("reconnect");
    let server = start_server(&dir).await;
    let spec = spec_of(&server);
    let client = Client::connect(spec.addr, spec.trust.clone())
        .await
        .expect("connect");
    let (alice, bob) = (Alice::random(), Bob::random());
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let request = || {
        let capsule = alice
            .encrypt(b"m")
            .expect("encrypt")
            .capsule_bytes()
            .expect("bytes");
        ReencryptRequest::new(grant.policy(0).expect("policy"), [capsule])
    };
    client.reencrypt(request()).await.expect("first");
    server.shutdown().await;

    // Same data directory (same certificate), same port. The old socket may take a moment to
    // be released (connections draining).
    let mut config = umbrald_server::Config::ephemeral(&dir, 1);
    config.server.listen = spec.addr;
    let mut attempts = 0;
    let restarted = loop {
        match umbrald_server::Server::start(config.clone(), None).await {
            Ok(server) => break server,
            Err(e) if attempts < 50 => {
                attempts += 1;
                eprintln!("restart attempt {attempts}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    };
    let outcomes = client.reencrypt(request()).await.expect("after restart");
    assert!(outcomes[0].is_ok());
    assert_eq!(client.handshake_times().len(), 2, "one reconnection");
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_is_refused_and_the_ca_file_is_accepted() {
    let dir = temp_dir("trust");
    let server = start_server(&dir).await;
    let addr = server.local_addr();
    let wrong = Client::connect_with(
        addr,
        &Trust::Fingerprint(Fingerprint([1; 32])),
        options(Duration::from_secs(2)),
    )
    .await
    .expect_err("pinning mismatch");
    assert!(matches!(wrong, ClientError::Connection { .. }), "{wrong}");

    // The self-signed certificate names localhost, so it can serve as its own CA.
    let ca = Trust::CaFile(dir.join("cert.pem"));
    let client = Client::connect(addr, ca).await.expect("CA trust");
    client.ensure_connected().await.expect("connected");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_gets_the_servers_too_large_answer() {
    let dir = temp_dir("too-large");
    let mut config = umbrald_server::Config::ephemeral(&dir, 1);
    config.limits.max_request_bytes = 64 << 10;
    let server = umbrald_server::Server::start(config, None)
        .await
        .expect("server");
    let spec = spec_of(&server);
    let client = Client::connect(spec.addr, spec.trust.clone())
        .await
        .expect("connect");
    let (alice, bob) = (Alice::random(), Bob::random());
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let capsule = alice
        .encrypt(b"m")
        .expect("encrypt")
        .capsule_bytes()
        .expect("bytes");
    // About 110 KiB of capsules: the server stops reading and answers on the same stream.
    let request = ReencryptRequest::new(grant.policy(0).expect("policy"), vec![capsule; 1000]);
    let err = client.reencrypt(request).await.expect_err("too large");
    assert!(
        matches!(&err, ClientError::Server(e) if e.code == "too_large"),
        "{err}"
    );
    assert_eq!(err.label(), "too_large");
    // The connection survives.
    let small = ReencryptRequest::new(grant.policy(0).expect("policy"), [vec![0; 105]]);
    let outcomes = client.reencrypt(small).await.expect("still connected");
    assert_eq!(
        outcomes[0].as_ref().map_err(|e| e.code.as_str()),
        Err("invalid_capsule")
    );
    server.shutdown().await;
}

/// A CA, and a client certificate it signed, as PEM: `(ca, client cert, client key)`.
fn client_pki() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let client_key = KeyPair::generate().expect("client key");
    let mut params = CertificateParams::new(vec!["client".to_owned()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");
    (ca.pem(), cert.pem(), client_key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_identity_and_works_with_it() {
    let dir = temp_dir("mtls");
    let (ca, cert, key) = client_pki();
    let ca_path = dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca).expect("write ca");
    let mut config = umbrald_server::Config::ephemeral(&dir, 1);
    config.tls.client_ca = Some(ca_path);
    let server = umbrald_server::Server::start(config, None)
        .await
        .expect("server");
    let spec = spec_of(&server);
    let (alice, bob) = (Alice::random(), Bob::random());
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let capsule = alice
        .encrypt(b"m")
        .expect("encrypt")
        .capsule_bytes()
        .expect("bytes");
    let request = ReencryptRequest::new(grant.policy(0).expect("policy"), vec![capsule]);
    let short = options(Duration::from_secs(3));

    // Without a certificate the server refuses the connection (the handshake or the first
    // request fails, depending on when the client learns of the refusal).
    let anonymous = async {
        let client = Client::connect_with(spec.addr, &spec.trust, short.clone()).await?;
        client.reencrypt(request.clone()).await
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), anonymous)
        .await
        .expect("refusal within the timeouts");
    assert!(refused.is_err(), "served a client without a certificate");

    // With the identity, from files as the CLI loads it.
    let (cert_path, key_path) = (dir.join("client.pem"), dir.join("client.key"));
    std::fs::write(&cert_path, cert).expect("write cert");
    std::fs::write(&key_path, key).expect("write key");
    let identity = ClientIdentity::from_files(&cert_path, &key_path).expect("identity");
    assert!(!format!("{identity:?}").contains("PRIVATE"), "key in Debug");
    let with_identity = ClientOptions {
        identity: Some(identity),
        ..short
    };
    let client = Client::connect_with(spec.addr, &spec.trust, with_identity)
        .await
        .expect("mutual TLS handshake");
    let outcomes = client.reencrypt(request).await.expect("answered");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nucypher_requests_round_trip_through_the_client() {
    use umbral_pre::{DefaultDeserialize, SecretKey, Signer};
    use umbrald_nucypher::{build, NodeKeys};

    let dir = temp_dir("nucypher");
    let node = NodeKeys::random();
    let (node_dk, node_vk) = (*node.decrypting_public_key(), *node.verifying_public_key());
    let config = umbrald_server::Config::ephemeral(&dir, 1);
    let server = umbrald_server::Server::start(config, Some(node))
        .await
        .expect("server");
    let spec = spec_of(&server);
    let client = Client::connect(spec.addr, spec.trust.clone())
        .await
        .expect("connect");

    // Alice grants Bob 1-of-1; the publisher encrypts the kfrag to the node, as nucypher does.
    let (alice, bob) = (Alice::random(), Bob::random());
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let sealed: Vec<_> = (0..3u8)
        .map(|i| alice.encrypt(&[i; 20]).expect("encrypt"))
        .collect();
    let capsules: Vec<Vec<u8>> = sealed
        .iter()
        .map(|s| s.capsule_bytes().expect("bytes"))
        .collect();
    let publisher = Signer::new(SecretKey::random());
    let hrac = [7u8; 16];
    let node_pk =
        umbral_pre::PublicKey::try_from_compressed_bytes(&node_dk).expect("node decrypting key");
    let ekfrag =
        build::encrypt_kfrag(&publisher, &node_pk, &hrac, &grant.kfrags[0]).expect("ekfrag");
    let key33 = |k: &umbral_pre::PublicKey| -> [u8; 33] {
        k.to_compressed_bytes()[..].try_into().expect("33 bytes")
    };
    let request = build::encode_request(
        &capsules,
        &hrac,
        &ekfrag,
        &key33(&publisher.verifying_key()),
        &key33(&bob.public_key()),
    );

    let cfrags = client
        .reencrypt_nucypher(&request, &node_vk)
        .await
        .expect("a signed ReencryptionResponse");
    assert_eq!(cfrags.len(), capsules.len());
    for (i, (cfrag, sealed)) in cfrags.iter().zip(&sealed).enumerate() {
        let verified = umbral_pre::CapsuleFrag::from_bytes(cfrag)
            .expect("cfrag")
            .verify(
                &sealed.capsule,
                &grant.verifying_pk,
                &grant.delegating_pk,
                &grant.receiving_pk,
            )
            .map_err(|(e, _)| e)
            .expect("cfrag verifies");
        let plain = bob.decrypt(&grant, sealed, [verified]).expect("decrypts");
        assert_eq!(&plain[..], &[i as u8; 20]);
    }

    // Another node's key does not verify the signature; a refusal is a server error.
    let mut other = node_vk;
    other[1] ^= 1;
    let wrong = client.reencrypt_nucypher(&request, &other).await;
    assert!(
        matches!(wrong, Err(ClientError::UnexpectedResponse(_))),
        "{wrong:?}"
    );
    let mut v4 = request.clone();
    v4[5] = 4;
    let refused = client.reencrypt_nucypher(&v4, &node_vk).await;
    assert!(
        matches!(&refused, Err(ClientError::InvalidRequest(_))),
        "a request that does not parse is not sent: {refused:?}"
    );
    let mut tampered = request.clone();
    // The tail is publisher key (35 bytes with its header), Bob's key (35), nil, nil: this
    // flips a bit of the publisher's key, so the publisher's signature cannot verify.
    let at = tampered.len() - 40;
    tampered[at] ^= 1;
    let refused = client.reencrypt_nucypher(&tampered, &node_vk).await;
    assert!(
        matches!(&refused, Err(ClientError::Server(_))),
        "{refused:?}"
    );
    server.shutdown().await;
}
