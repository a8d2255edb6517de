//! Shared e2e plumbing: a client for the real control plane ($KUBECONFIG), a temporary namespace
//! per test, the operator binary as a child process watching only that namespace, and waits.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apitoken_operator::api::ApiToken;
use apitoken_operator::verifier::api::ApiTokenVerifier;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt, ResourceExt};

pub use crate::operator::Operator;

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run `make cluster-up` and export the line it prints"
    );
    Client::try_default()
        .await
        .expect("connect to the control plane in $KUBECONFIG")
}

/// Applies the ApiToken and ApiTokenVerifier CRDs (idempotent) and waits until they are served.
pub async fn install_crd(client: &Client) {
    for crd in [ApiToken::crd(), ApiTokenVerifier::crd()] {
        install(client, crd).await;
    }
}

async fn install(client: &Client, crd: CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    let name = crd.name_any();
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(TIMEOUT, established)
        .await
        .expect("CRD established in time")
        .expect("watch CRD");
}

/// A namespace that lives for one test.
pub struct TestNs {
    pub client: Client,
    pub name: String,
}

impl TestNs {
    pub async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crd(&client).await;
        let name = format!("{prefix}-{:08x}", rand_suffix());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        Self { client, name }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    pub fn tokens(&self) -> Api<ApiToken> {
        self.api()
    }

    pub fn secrets(&self) -> Api<Secret> {
        self.api()
    }

    /// Server-side applies an ApiToken from YAML as a user (not the operator) would.
    pub async fn apply_yaml(&self, yaml: &str) -> ApiToken {
        let token: ApiToken = serde_yaml::from_str(yaml).expect("valid ApiToken YAML");
        self.apply(&token).await
    }

    pub async fn apply(&self, token: &ApiToken) -> ApiToken {
        // Only what a user writes: name, labels, annotations and spec.
        let mut clean = ApiToken::new(&token.name_any(), token.spec.clone());
        clean.metadata.namespace = Some(self.name.clone());
        clean.metadata.labels = token.metadata.labels.clone();
        clean.metadata.annotations = token.metadata.annotations.clone();
        self.tokens()
            .patch(
                &clean.name_any(),
                &PatchParams::apply("e2e-user").force(),
                &Patch::Apply(&clean),
            )
            .await
            .expect("apply ApiToken")
    }

    /// Events about `name` in this namespace, oldest first.
    pub async fn events(&self, name: &str) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
    }

    /// Events about `name` with `reason`, waiting for the first one: the operator publishes
    /// Events after it writes status, so they can trail what a test waited for.
    pub async fn events_with_reason(&self, name: &str, reason: &str) -> Vec<Event> {
        eventually(&format!("a {reason} event for {name}"), TIMEOUT, || async {
            let found: Vec<Event> = self
                .events(name)
                .await
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .collect();
            (!found.is_empty()).then_some(found)
        })
        .await
    }

    /// The one Event with `reason` about `name`: waits for it, lets a repeat arrive, then asserts
    /// there is exactly one and it was never repeated (kube's Recorder folds a repeat of the same
    /// reason into a `series` on the first Event instead of creating another).
    pub async fn single_event(&self, name: &str, reason: &str) -> Event {
        self.events_with_reason(name, reason).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut events: Vec<Event> = self
            .events(name)
            .await
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect();
        assert_eq!(events.len(), 1, "one {reason} Event for {name}");
        let event = events.remove(0);
        assert!(
            event.series.is_none(),
            "the {reason} Event was repeated: {:?}",
            event.series
        );
        event
    }

    pub async fn delete_namespace(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .delete(&self.name, &DeleteParams::default())
            .await
            .expect("delete namespace");
    }

    /// Deletes the namespace and waits until it is gone (the test namespace can then be created
    /// again under the same name).
    pub async fn delete_namespace_and_wait(&self, timeout: Duration) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .delete(&self.name, &DeleteParams::default())
            .await
            .expect("delete namespace");
        wait_gone(&namespaces, &self.name, timeout).await;
    }
}

/// Waits until the object `name` is gone from `api`.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} gone"), timeout, || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Polls `check` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The kubectl built with the control plane.
pub fn kubectl() -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
    let out = Command::new("bash")
        .args([script, "bin"])
        .output()
        .expect("cluster.sh bin");
    let dir = String::from_utf8(out.stdout).unwrap();
    Command::new(PathBuf::from(dir.trim()).join("kubectl"))
}

/// Runs `kubectl apply -f -` with `yaml` on stdin; returns (success, stdout + stderr).
pub fn kubectl_apply(namespace: &str, yaml: &str) -> (bool, String) {
    kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], yaml)
}

/// Runs kubectl with `args` and `yaml` on stdin; returns (success, stdout + stderr).
pub fn kubectl_stdin(args: &[&str], yaml: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs `command`, asserts it succeeded and returns its standard output.
pub fn output_ok(command: &mut Command) -> String {
    let out = command.output().expect("run command");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A key of a Secret as a string. Every value read is recorded (see [`issued_values`]) so the
/// leak check at the end of a suite can look for it everywhere it must not be.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    let value = String::from_utf8(bytes.0.clone()).expect("utf-8 secret value");
    if ISSUED_KEYS.contains(&key) {
        record_value(&value);
    }
    Some(value)
}

/// The keys holding issued values (not `expires-at`, a time status shows too, nor keys of
/// Secrets the operator did not create).
const ISSUED_KEYS: [&str; 2] = ["token", "token.previous"];

/// Where the values tests saw are kept: one per line, under target/tmp, never in a log.
pub fn issued_values_file() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("issued-values")
}

/// Values shorter than this are test fixtures (e.g. "x"), not issued tokens, and would match
/// ordinary log text by chance.
const MIN_RECORDED: usize = 16;

fn record_value(value: &str) {
    use std::io::Write;
    if value.len() < MIN_RECORDED || value.contains('\n') {
        return;
    }
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(issued_values_file())
    {
        // One write per line: tests record concurrently, and `writeln!` may split a line into two
        // appends, which interleave into a merged line and an empty one (that every text contains).
        let _ = file.write_all(format!("{value}\n").as_bytes());
    }
}

/// Keeps `text` (a metrics scrape, a key-set Secret) in `e2e-logs/<file>` for the suite-wide leak
/// check, which searches every file there: the objects are gone with their namespaces by then.
#[allow(dead_code)] // not every suite scrapes
pub fn keep_for_leak_check(file: &str, text: &str) {
    use std::io::Write;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file))
    {
        let _ = writeln!(f, "{text}");
    }
}

/// Every value recorded by [`secret_value`] in this target dir, deduplicated.
#[allow(dead_code)] // used by the leak checks
pub fn issued_values() -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(issued_values_file())
        .unwrap_or_default()
        .lines()
        .filter(|v| v.len() >= MIN_RECORDED)
        .map(str::to_owned)
        .collect()
}

/// Waits until the ApiToken's status satisfies `check`, and returns it.
pub async fn wait_status<F>(
    ns: &TestNs,
    name: &str,
    what: &str,
    timeout: Duration,
    check: F,
) -> ApiToken
where
    F: Fn(&ApiToken) -> bool,
{
    eventually(what, timeout, || async {
        let t = ns.tokens().get(name).await.ok()?;
        check(&t).then_some(t)
    })
    .await
}

pub fn ready(t: &ApiToken) -> Option<(&str, &str)> {
    condition(t, "Ready")
}

/// The (status, reason) of the condition of type `kind`.
pub fn condition<'a>(t: &'a ApiToken, kind: &str) -> Option<(&'a str, &'a str)> {
    let c = t
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)?;
    Some((c.status.as_str(), c.reason.as_str()))
}

pub fn revision(t: &ApiToken) -> i64 {
    t.status.as_ref().and_then(|s| s.revision).unwrap_or(0)
}

/// Why the current value was issued (`status.lastRotation.reason`).
pub fn last_reason(t: &ApiToken) -> &'static str {
    t.status
        .as_ref()
        .and_then(|s| s.last_rotation.as_ref())
        .map_or("-", |r| r.reason.as_str())
}

impl TestNs {
    /// Edits a Secret's token by hand, as someone with Secret access might.
    pub async fn tamper(&self, secret: &str, value: &str) {
        let patch = serde_json::json!({"stringData": {"token": value}});
        self.secrets()
            .patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("edit Secret");
    }

    /// Waits until `key` is gone from the Secret.
    pub async fn wait_key_gone(&self, secret: &str, key: &str, timeout: Duration) {
        eventually(
            &format!("{key} gone from Secret {secret}"),
            timeout,
            || async {
                let s = self.secrets().get(secret).await.ok()?;
                secret_value(&s, key).is_none().then_some(())
            },
        )
        .await;
    }
}

/// Security 7, run once after a whole suite (`make e2e`, `make faults`): no value any test read
/// from a Secret ([`issued_values`]) appears, in clear or base64, in any operator log of this
/// target dir (with the metrics scrapes, proxy logs and key-set Secrets the tests saw, see
/// [`keep_for_leak_check`]), in any Event, ApiToken or key-set Secret still in the cluster.
#[allow(dead_code)] // used by each suite's leak check
pub async fn assert_no_value_leaked() {
    use base64::Engine;
    let values = issued_values();
    assert!(!values.is_empty(), "the suite recorded the values it saw");
    let client = client().await;
    let mut haystacks: Vec<(String, String)> = Vec::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
    for entry in std::fs::read_dir(&dir).expect("operator logs").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        haystacks.push((entry.path().display().to_string(), text));
    }
    let events: Api<Event> = Api::all(client.clone());
    for e in events.list(&ListParams::default()).await.expect("events") {
        let what = format!(
            "Event {}/{}",
            e.namespace().unwrap_or_default(),
            e.name_any()
        );
        haystacks.push((what, serde_json::to_string(&e).unwrap()));
    }
    let keysets: Api<Secret> = Api::all(client.clone());
    let verifier_sets = ListParams::default().labels("apitoken.dev/verifier");
    for s in keysets.list(&verifier_sets).await.expect("key-set Secrets") {
        let what = format!(
            "Secret {}/{}",
            s.namespace().unwrap_or_default(),
            s.name_any()
        );
        haystacks.push((what, serde_json::to_string(&s).unwrap()));
    }
    let tokens: Api<ApiToken> = Api::all(client);
    for t in tokens.list(&ListParams::default()).await.expect("tokens") {
        let what = format!(
            "ApiToken {}/{}",
            t.namespace().unwrap_or_default(),
            t.name_any()
        );
        haystacks.push((what, serde_json::to_string(&t).unwrap()));
    }
    let logs = haystacks
        .iter()
        .filter(|(w, _)| w.ends_with(".log"))
        .count();
    for value in &values {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for (what, text) in &haystacks {
            assert!(
                !text.contains(value.as_str()) && !text.contains(&encoded),
                "an issued value appears in {what}"
            );
        }
    }
    eprintln!(
        "no leak: {} values checked against {} places ({logs} operator logs)",
        values.len(),
        haystacks.len()
    );
}
