//! `images.pull` against a real registry (Debian's docker-registry on 127.0.0.1), images
//! pushed by skopeo from layouts built here: OCI and Docker schema 2 manifests, a
//! multi-platform index, pull by digest, resuming from the content store, `berth run` of
//! the pulled image, and the failures (unknown repository or tag, registry down, tampered
//! or truncated blobs) that must leave no image and only garbage behind.

#[path = "../src/images.rs"]
mod images;
#[path = "../src/registry.rs"]
mod registry;
mod tasks_support;

use berth_tests::{expect_error, message, unique_id, TestDaemon};
use images::{busybox_layer, Blob, ImageParts, Layer, INDEX};
use registry::{tagged, write_layout, Registry};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth_out, stdout};

/// A two-layer busybox image (gzip): busybox, then a layer with /etc/motd.
fn busybox_parts() -> ImageParts {
    let mut extra = Layer::new();
    extra.dir("etc", 0o755).file("etc/motd", b"pulled\n", 0o644);
    let mut parts = ImageParts::new(
        vec![busybox_layer(), extra.finish()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "GREETING=from-the-registry"]}),
    );
    parts.gzip = true;
    parts
}

/// Writes `parts` as an OCI layout tagged `tag` and pushes it as `repo:tag`; returns
/// `(manifest, config, layers)`.
fn push(
    reg: &Registry,
    parts: &ImageParts,
    repo: &str,
    tag: &str,
    extra: &[&str],
) -> (Blob, Blob, Vec<Blob>) {
    let (manifest, config, layers) = parts.blobs();
    let layout = reg.dir.path().join(format!("layout-{repo}-{tag}"));
    let mut blobs = vec![manifest.clone(), config.clone()];
    blobs.extend(layers.iter().cloned());
    write_layout(&layout, &blobs, vec![tagged(&manifest, tag)]);
    reg.push(&layout, tag, repo, extra);
    (manifest, config, layers)
}

fn pull(d: &TestDaemon, reference: &str) -> Result<Value, Value> {
    d.rpc("images.pull", json!({"ref": reference, "plain_http": true}))
}

fn digests(d: &TestDaemon) -> Vec<String> {
    let mut out: Vec<String> = d.rpc_ok("content.list", json!({}))["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .map(|b| b["digest"].as_str().expect("digest").to_owned())
        .collect();
    out.sort();
    out
}

fn image_names(d: &TestDaemon) -> Vec<String> {
    d.rpc_ok("images.list", json!({}))["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn berth_pulls_an_image_with_the_cli_and_runs_it() {
    let reg = Registry::start();
    let (manifest, _, layers) = push(&reg, &busybox_parts(), "tools/bb", "1", &[]);
    let d = TestDaemon::start();
    let reference = format!("{}/tools/bb:1", reg.host());
    let out = berth_out(&d, &["images", "pull", "--plain-http", &reference], b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), format!("{reference} {}\n", manifest.digest()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("pulling {reference}")),
        "plain progress lines: {err}"
    );

    let image = d.rpc_ok("images.get", json!({"name": reference}));
    assert_eq!(image["image"]["target"]["digest"], json!(manifest.digest()));
    assert_eq!(
        image["config"]["config"]["Env"][1],
        "GREETING=from-the-registry"
    );
    for l in &layers {
        assert!(
            digests(&d).contains(&l.digest()),
            "layer {} stored",
            l.digest()
        );
    }

    let id = unique_id("pulled");
    let out = berth_out(
        &d,
        &[
            "run",
            "--rm",
            &reference,
            &id,
            "sh",
            "-c",
            "echo $GREETING; cat /etc/motd",
        ],
        b"",
    );
    assert_eq!(stdout(&out), "from-the-registry\npulled\n", "{out:?}");
    assert_clean(&d, &[id]);
    assert!(
        d.rpc_ok("leases.list", json!({}))["leases"]
            .as_array()
            .expect("leases")
            .is_empty(),
        "the pull's lease is released"
    );
}

#[test]
fn a_second_pull_fetches_no_blob_berth_already_has() {
    let reg = Registry::start();
    let (_, config, layers) = push(&reg, &busybox_parts(), "bb", "1", &[]);
    let d = TestDaemon::start();
    let reference = format!("{}/bb:1", reg.host());
    pull(&d, &reference).expect("first pull");
    for b in layers.iter().chain([&config]) {
        assert_eq!(
            reg.blob_gets(&b.digest()),
            1,
            "fetched once: {}",
            b.digest()
        );
    }
    // A lease keeps the blobs from the collector that the delete wakes.
    let target =
        d.rpc_ok("images.get", json!({"name": reference}))["image"]["target"]["digest"].clone();
    d.rpc_ok("leases.create", json!({"id": "keep"}));
    d.rpc_ok(
        "leases.add_resource",
        json!({"id": "keep", "resource": {"id": target, "type": "content"}}),
    );
    d.rpc_ok("images.delete", json!({"name": reference}));
    let again = pull(&d, &reference).expect("second pull");
    assert_eq!(again["image"]["name"], json!(reference));
    for b in layers.iter().chain([&config]) {
        assert_eq!(
            reg.blob_gets(&b.digest()),
            1,
            "not fetched again: {}",
            b.digest()
        );
    }
}

#[test]
fn docker_schema2_manifests_and_digest_references_pull() {
    let reg = Registry::start();
    push(
        &reg,
        &busybox_parts(),
        "docker/bb",
        "v2",
        &["--format", "v2s2"],
    );
    let d = TestDaemon::start();
    let reference = format!("{}/docker/bb:v2", reg.host());
    let image = pull(&d, &reference).expect("pull schema 2")["image"].clone();
    assert_eq!(
        image["target"]["media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let digest = image["target"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let pinned = format!("{}/docker/bb@{digest}", reg.host());
    let by_digest = pull(&d, &pinned).expect("pull by digest");
    assert_eq!(by_digest["image"]["name"], json!(pinned));
    assert_eq!(by_digest["image"]["target"]["digest"], json!(digest));

    let id = unique_id("v2s2");
    let out = berth_out(&d, &["run", "--rm", &pinned, &id, "cat", "/etc/motd"], b"");
    assert_eq!(stdout(&out), "pulled\n", "{out:?}");
    assert_clean(&d, &[id]);
}

#[test]
fn a_multi_platform_index_pulls_the_host_platform_or_the_one_asked_for() {
    let reg = Registry::start();
    let host = busybox_parts();
    let mut other = ImageParts::new(
        vec![{
            let mut l = Layer::new();
            l.file("s390x-only", b"z\n", 0o644);
            l.finish()
        }],
        json!({"Cmd": ["sh"]}),
    );
    other.arch = "s390x".into();
    other.gzip = true; // skopeo would compress a plain tar layer on push, changing its digest
    let (hm, hc, hl) = host.blobs();
    let (om, oc, ol) = other.blobs();
    let entry = |m: &Blob, arch: &str| {
        let mut d = m.descriptor();
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    let index = Blob::json(
        INDEX,
        &json!({"schemaVersion": 2, "mediaType": INDEX,
                "manifests": [entry(&om, "s390x"), entry(&hm, images::host_arch())]}),
    );
    let layout = reg.dir.path().join("multi");
    let mut blobs = vec![index.clone(), hm, hc, om, oc];
    blobs.extend(hl);
    blobs.extend(ol.iter().cloned());
    write_layout(&layout, &blobs, vec![tagged(&index, "multi")]);
    reg.push(&layout, "multi", "bb", &["--all"]);

    let d = TestDaemon::start();
    let reference = format!("{}/bb:multi", reg.host());
    let image = pull(&d, &reference).expect("pull the index")["image"].clone();
    // skopeo re-encodes the index on push: its digest is the registry's, not ours.
    assert_eq!(image["target"]["media_type"], INDEX);
    assert!(
        !digests(&d).contains(&ol[0].digest()),
        "the other platform's layer is not fetched"
    );
    let id = unique_id("multi");
    let out = berth_out(
        &d,
        &["run", "--rm", &reference, &id, "cat", "/etc/motd"],
        b"",
    );
    assert_eq!(stdout(&out), "pulled\n", "{out:?}");
    assert_clean(&d, &[id]);

    let s390x = d.rpc(
        "images.pull",
        json!({"ref": reference, "plain_http": true, "platform": "linux/s390x"}),
    );
    s390x.expect("pull for another platform");
    assert!(
        digests(&d).contains(&ol[0].digest()),
        "the s390x layer is fetched when asked for"
    );

    let err = expect_error(
        d.rpc(
            "images.pull",
            json!({"ref": reference, "plain_http": true, "platform": "linux/mips64"}),
        ),
        "not_found",
    );
    assert!(message(&err).contains("linux/s390x"), "{err}");
}

#[test]
fn unknown_repositories_tags_and_a_registry_that_is_down_are_clear_errors() {
    let reg = Registry::start();
    push(&reg, &busybox_parts(), "bb", "1", &[]);
    let d = TestDaemon::start();

    let nope = format!("{}/nope:1", reg.host());
    let err = expect_error(pull(&d, &nope), "not_found");
    assert!(
        message(&err).contains(&nope) && message(&err).contains("repository"),
        "{err}"
    );

    let tag = format!("{}/bb:2", reg.host());
    let err = expect_error(pull(&d, &tag), "not_found");
    assert!(
        message(&err).contains(&tag) && message(&err).contains("tag \"2\""),
        "{err}"
    );

    let down = format!("127.0.0.1:{}/bb:1", registry::free_port());
    let err = expect_error(pull(&d, &down), "unavailable");
    assert!(
        message(&err).contains(&down) && message(&err).contains("unreachable"),
        "{err}"
    );

    let err = expect_error(pull(&d, "Not A Ref"), "invalid_argument");
    assert!(message(&err).contains("not an image reference"), "{err}");
    assert!(image_names(&d).is_empty());
}

/// Pushes busybox_parts as bb:1, breaks its second layer's file in the registry with
/// `tamper`, pulls, and checks the error, that no image exists, that the lease is gone and
/// that gc.run collects what the failed pull stored.
fn failed_pull_leaves_only_garbage(tamper: impl Fn(&std::path::Path), kind: &str, words: &str) {
    let reg = Registry::start();
    let (_, _, layers) = push(&reg, &busybox_parts(), "bb", "1", &[]);
    let bad = layers[1].digest();
    tamper(&reg.blob_file(&bad));
    let d = TestDaemon::start();
    let reference = format!("{}/bb:1", reg.host());
    let err = expect_error(pull(&d, &reference), kind);
    let msg = message(&err);
    assert!(
        msg.contains(&reference) && msg.contains(&bad) && msg.contains(words),
        "{err}"
    );
    assert!(image_names(&d).is_empty(), "a failed pull names no image");
    assert!(
        d.rpc_ok("leases.list", json!({}))["leases"]
            .as_array()
            .expect("leases")
            .is_empty(),
        "the lease is released"
    );
    assert!(
        !digests(&d).is_empty(),
        "the blobs that arrived stay until gc"
    );
    let gc = d.rpc_ok("gc.run", json!({}));
    assert!(
        gc["removed"]["content"].as_u64().expect("count") > 0,
        "{gc}"
    );
    assert!(digests(&d).is_empty(), "gc collects a failed pull's blobs");
    let left: Vec<_> = std::fs::read_dir(d.dir().join("root/content/blobs/sha256"))
        .expect("blobs dir")
        .collect();
    assert!(left.is_empty(), "no blob file left: {left:?}");
}

#[test]
fn a_tampered_blob_fails_the_pull_by_digest_and_gc_collects_the_rest() {
    failed_pull_leaves_only_garbage(
        |file| {
            let mut bytes = std::fs::read(file).expect("blob");
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(file, bytes).expect("tamper");
        },
        "failed_precondition",
        "hash to",
    );
}

#[test]
fn a_truncated_blob_fails_the_pull_by_size() {
    failed_pull_leaves_only_garbage(
        |file| {
            let bytes = std::fs::read(file).expect("blob");
            std::fs::write(file, &bytes[..bytes.len() / 2]).expect("truncate");
        },
        "failed_precondition",
        "bytes",
    );
}

#[test]
fn basic_auth_registries_take_credentials_from_a_docker_config_or_berths_config() {
    let reg = Registry::with_basic_auth("berth", "s3cret-pw");
    push(&reg, &busybox_parts(), "private/bb", "1", &[]);
    let reference = format!("{}/private/bb:1", reg.host());
    let cfg_dir = tempfile::tempdir().expect("tmp");

    let anonymous = TestDaemon::start_with(&format!(
        "docker_config = \"{}\"\n",
        cfg_dir.path().join("missing.json").display()
    ));
    let err = expect_error(pull(&anonymous, &reference), "permission_denied");
    assert!(message(&err).contains(&reference), "{err}");
    drop(anonymous);

    // A daemon whose docker config.json holds `user:password` for the registry.
    let with_credentials = |file: &str, user_password: &str| {
        let path = cfg_dir.path().join(file);
        std::fs::write(
            &path,
            registry::docker_config(&reg.host(), user_password).to_string(),
        )
        .expect("write docker config");
        TestDaemon::start_with(&format!("docker_config = \"{}\"\n", path.display()))
    };
    let d = with_credentials("wrong.json", "berth:not-it");
    let err = expect_error(pull(&d, &reference), "permission_denied");
    assert!(
        message(&err).contains("refused") && !message(&err).contains("not-it"),
        "{err}"
    );
    drop(d);

    let d = with_credentials("config.json", "berth:s3cret-pw");
    pull(&d, &reference).expect("pull with docker config credentials");
    let id = unique_id("auth");
    let out = berth_out(
        &d,
        &["run", "--rm", &reference, &id, "cat", "/etc/motd"],
        b"",
    );
    assert_eq!(stdout(&out), "pulled\n", "{out:?}");
    assert_clean(&d, &[id]);
    let events = d.rpc_ok("events.list", json!({})).to_string();
    assert!(
        !events.contains("s3cret-pw"),
        "credentials never reach events"
    );
    drop(d);

    let d = TestDaemon::start_with(&format!(
        "docker_config = \"{}\"\n[registries.\"{}\"]\nusername = \"berth\"\npassword = \"s3cret-pw\"\n",
        cfg_dir.path().join("wrong.json").display(),
        reg.host()
    ));
    pull(&d, &reference).expect("berth's own config wins over the docker config");
    let log = d.stderr();
    assert!(
        log.contains("berthd serving"),
        "this is berthd's log: {log}"
    );
    assert!(!log.contains("s3cret-pw"), "credentials never logged");
}

/// skopeo's view of a pushed image: its manifest digest, as the registry serves it.
fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    let out = cmd
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "skopeo inspect {reference}: {out:?}");
    let info: Value = serde_json::from_slice(&out.stdout).expect("json");
    info["Digest"].as_str().expect("Digest").to_owned()
}

#[test]
fn push_sends_what_a_pull_gets_back_with_the_same_digests_and_skips_what_is_there() {
    let reg = Registry::start();
    let src = Registry::start();
    push(&src, &busybox_parts(), "src/bb", "1", &[]);
    let d = TestDaemon::start();
    pull(&d, &format!("{}/src/bb:1", src.host())).expect("pull");
    let image = d.rpc_ok(
        "images.get",
        json!({"name": format!("{}/src/bb:1", src.host())}),
    );
    let digest = image["image"]["target"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let to = format!("{}/mirror/bb:2", reg.host());
    let out = berth_out(
        &d,
        &[
            "images",
            "push",
            "--plain-http",
            &format!("{}/src/bb:1", src.host()),
            &to,
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("3 blobs uploaded, 0 there already"),
        "{out:?}"
    );
    assert_eq!(
        skopeo_digest(&to, None),
        digest,
        "the registry serves berth's manifest"
    );
    // Again: every blob is there; only the manifest goes.
    let again = d.rpc_ok(
        "images.push",
        json!({"name": format!("{}/src/bb:1", src.host()), "reference": to, "plain_http": true}),
    );
    assert_eq!(again["uploaded"], 0, "{again}");
    assert_eq!(again["existing"], 3, "{again}");
    // To another repository of the registry it came from: mounted there, not sent.
    let copy = format!("{}/copy/bb:1", src.host());
    let mounted = d.rpc_ok(
        "images.push",
        json!({"name": format!("{}/src/bb:1", src.host()), "reference": copy, "plain_http": true}),
    );
    assert_eq!(mounted["mounted"], 3, "{mounted}");
    assert_eq!(mounted["uploaded"], 0, "{mounted}");
    assert_eq!(skopeo_digest(&copy, None), digest);
    // Pulled back by another daemon: the same digest, and it runs.
    let other = TestDaemon::start();
    pull(&other, &to).expect("pull back");
    let back = other.rpc_ok("images.get", json!({"name": to}));
    assert_eq!(back["image"]["target"]["digest"], digest.as_str());
    let id = unique_id("pushed");
    let out = berth_out(&other, &["run", "--rm", &to, &id, "cat", "/etc/motd"], b"");
    assert_eq!(stdout(&out), "pulled\n", "{out:?}");
    assert_clean(&other, &[id]);
    let err = d
        .rpc("images.push", json!({"name": "nope", "plain_http": true}))
        .expect_err("missing image");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
}

#[test]
fn push_to_a_registry_with_htpasswd_uses_the_configured_credentials() {
    let reg = Registry::with_basic_auth("berth", "s3cret-pw");
    let src = Registry::start();
    push(&src, &busybox_parts(), "src/bb", "1", &[]);
    let source = format!("{}/src/bb:1", src.host());
    let to = format!("{}/private/bb:1", reg.host());
    let anonymous = TestDaemon::start();
    pull(&anonymous, &source).expect("pull");
    let err = expect_error(
        anonymous.rpc(
            "images.push",
            json!({"name": source, "reference": to, "plain_http": true}),
        ),
        "permission_denied",
    );
    assert!(message(&err).contains(&reg.host()), "{err}");
    drop(anonymous);
    let d = TestDaemon::start_with(&format!(
        "[registries.\"{}\"]\nusername = \"berth\"\npassword = \"s3cret-pw\"\n",
        reg.host()
    ));
    pull(&d, &source).expect("pull");
    let pushed = d.rpc_ok(
        "images.push",
        json!({"name": source, "reference": to, "plain_http": true}),
    );
    assert_eq!(pushed["uploaded"], 3, "{pushed}");
    assert_eq!(
        skopeo_digest(&to, Some("berth:s3cret-pw")),
        pushed["digest"].as_str().expect("digest")
    );
    assert!(
        !d.stderr().contains("s3cret-pw"),
        "credentials never reach the log"
    );
}

#[test]
fn push_with_all_platforms_sends_the_index_and_every_platform() {
    let reg = Registry::start();
    let d = TestDaemon::start();
    let name = "example.com/multi/bb:1";
    let multi = images::MultiPlatform::new(json!({ "io.containerd.image.name": name }));
    let src = d.dir().join("multi.tar");
    std::fs::write(&src, &multi.archive).expect("write");
    let res = d.rpc_ok("images.import", json!({"path": src, "all_platforms": true}));
    let index = res["images"][0]["target"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let to = format!("{}/multi/bb:1", reg.host());
    let out = berth_out(
        &d,
        &[
            "images",
            "push",
            "--plain-http",
            "--all-platforms",
            name,
            &to,
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains(&index), "{out:?}");
    // The registry serves berth's index byte for byte, and every platform behind it.
    let raw = images::skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{to}"),
    ]);
    assert_eq!(images::sha256(&raw), index);
    let copy = reg.dir.path().join("copied");
    images::skopeo_ok(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{to}"),
        &format!("oci:{}", copy.display()),
    ]);
    let other = TestDaemon::start();
    let platform = format!("linux/{}", multi.other_arch);
    let got = other.rpc_ok(
        "images.pull",
        json!({"ref": to, "plain_http": true, "platform": platform}),
    );
    assert_eq!(got["image"]["target"]["digest"], index.as_str(), "{got}");
    assert!(
        digests(&other).contains(&multi.other_manifest),
        "the other platform's manifest came from the registry"
    );
    // Without all_platforms only the host's manifest goes, under the tag.
    let host_only = format!("{}/multi/bb:host", reg.host());
    let pushed = d.rpc_ok(
        "images.push",
        json!({"name": name, "reference": host_only, "plain_http": true}),
    );
    assert_ne!(pushed["digest"], index.as_str(), "{pushed}");
    assert_eq!(
        skopeo_digest(&host_only, None),
        pushed["digest"].as_str().expect("digest")
    );
}
