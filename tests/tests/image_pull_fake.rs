//! `images.pull` against a hand-made registry, for what Debian's docker-registry cannot do
//! in a test: bearer tokens from a `WWW-Authenticate` challenge (realm, service, scope, with
//! basic credentials at the token endpoint) and a layer body cut off mid-transfer.

#[path = "../src/fake_registry.rs"]
mod fake_registry;
#[path = "../src/images.rs"]
mod images;

use berth_tests::{expect_error, message, TestDaemon};
use fake_registry::{Behaviour, FakeRegistry, TOKEN};
use images::{busybox_layer, ImageParts};
use serde_json::json;

fn parts() -> ImageParts {
    let mut p = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    p.gzip = true;
    p
}

fn pull(d: &TestDaemon, reference: &str) -> Result<serde_json::Value, serde_json::Value> {
    d.rpc("images.pull", json!({"ref": reference, "plain_http": true}))
}

#[test]
fn bearer_tokens_come_from_the_challenge_realm_with_service_scope_and_credentials() {
    let reg = FakeRegistry::start(
        &parts(),
        Behaviour {
            token_creds: Some("robot:tok-pw-77".into()),
            ..Default::default()
        },
    );
    let anonymous = TestDaemon::start_with("docker_config = \"/nonexistent/config.json\"\n");
    let err = expect_error(pull(&anonymous, &reg.reference()), "permission_denied");
    assert!(
        message(&err).contains(&reg.reference()) && message(&err).contains("token"),
        "{err}"
    );
    drop(anonymous);

    let d = TestDaemon::start_with(&format!(
        "[registries.\"127.0.0.1:{}\"]\nusername = \"robot\"\npassword = \"tok-pw-77\"\n",
        reg.port
    ));
    let image = pull(&d, &reg.reference()).expect("pull with a bearer token");
    assert_eq!(
        image["image"]["target"]["digest"],
        json!(reg.blobs[0].digest())
    );
    let queries = reg.token_queries.lock().expect("lock").clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("service=fake")
                && q.contains("scope=repository%3Afake%2Fimg%3Apull")),
        "{queries:?}"
    );
    let log = d.stderr();
    assert!(
        log.contains("berthd serving"),
        "this is berthd's log: {log}"
    );
    assert!(
        !log.contains(TOKEN) && !log.contains("tok-pw-77"),
        "no secret in the log"
    );
}

#[test]
fn anonymous_bearer_tokens_need_no_credentials() {
    let reg = FakeRegistry::start(&parts(), Behaviour::default());
    let d = TestDaemon::start_with("docker_config = \"/nonexistent/config.json\"\n");
    pull(&d, &reg.reference()).expect("anonymous token");
}

#[test]
fn a_layer_body_cut_off_mid_transfer_is_unavailable_and_leaves_only_garbage() {
    let reg = FakeRegistry::start(
        &parts(),
        Behaviour {
            cut_layers: true,
            ..Default::default()
        },
    );
    let d = TestDaemon::start();
    let err = expect_error(pull(&d, &reg.reference()), "unavailable");
    let layer = reg.blobs[2].digest();
    let msg = message(&err);
    assert!(
        msg.contains(&reg.reference()) && msg.contains(&layer) && msg.contains("cut off"),
        "{err}"
    );
    let images = d.rpc_ok("images.list", json!({}));
    assert_eq!(images["images"], json!([]));
    assert_eq!(d.rpc_ok("leases.list", json!({}))["leases"], json!([]));
    d.rpc_ok("gc.run", json!({}));
    assert_eq!(d.rpc_ok("content.list", json!({}))["blobs"], json!([]));
    let ingest: Vec<_> = std::fs::read_dir(d.dir().join("root/content/ingest"))
        .expect("ingest dir")
        .collect();
    assert!(ingest.is_empty(), "no partial ingest file: {ingest:?}");
}
