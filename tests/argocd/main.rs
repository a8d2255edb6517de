//! The Argo CD health check (charts/apitoken-operator/argocd/health.lua) against its cases in
//! Argo CD's own layout: health_test.yaml lists `inputPath` objects and the `healthStatus` each
//! must give. The objects are ApiTokens as the operator wrote them on the local cluster.
mod lua;

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Deserialize)]
struct Suite {
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    health_status: Expected,
    input_path: PathBuf,
}

#[derive(Deserialize)]
struct Expected {
    status: String,
    message: String,
}

fn dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/apitoken-operator/argocd"
    ))
}

#[test]
fn health_test_yaml_cases_pass() {
    let suite: Suite =
        serde_yaml::from_str(&std::fs::read_to_string(dir().join("health_test.yaml")).unwrap())
            .unwrap();
    let mut statuses: Vec<&str> = Vec::new();
    for case in &suite.tests {
        let path = dir().join(&case.input_path);
        let object: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let got = lua::health(&object).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want = lua::Health {
            status: case.health_status.status.clone(),
            message: case.health_status.message.clone(),
        };
        assert_eq!(got, want, "{}", case.input_path.display());
        statuses.push(&case.health_status.status);
    }
    for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(statuses.contains(&status), "no {status} case");
    }
}

#[test]
fn every_testdata_file_is_a_case() {
    let suite = std::fs::read_to_string(dir().join("health_test.yaml")).unwrap();
    for entry in std::fs::read_dir(dir().join("testdata")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            suite.contains(&format!("inputPath: testdata/{name}")),
            "testdata/{name} is in no case"
        );
    }
}

/// The script may use only what Argo CD loads: `string` and `math` are absent, and so are string
/// methods (they come from the string library's metatable), `io` and the unsafe parts of `os`.
#[test]
fn the_lua_state_is_as_restricted_as_argo_cds() {
    let lua = lua::argo_lua();
    let check = |code: &str| lua.load(code).eval::<bool>().unwrap();
    assert!(check(
        "return string == nil and math == nil and io == nil and debug == nil"
    ));
    assert!(check(
        "return os.exit == nil and os.execute == nil and os.getenv == nil"
    ));
    assert!(check(
        "return type(os.time()) == 'number' and require('os') == os"
    ));
    assert!(check(
        "return table.insert ~= nil and ipairs ~= nil and tostring ~= nil"
    ));
    assert!(
        lua.load("return ('x'):len()").exec().is_err(),
        "string methods must not exist"
    );
}

/// Unknown or partial objects give a health, never a script error.
#[test]
fn odd_objects_still_get_a_health() {
    for object in [
        serde_json::json!({"metadata": {"name": "a"}}),
        serde_json::json!({"metadata": {"name": "a"}, "status": {}}),
        serde_json::json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": []}}),
        serde_json::json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "False", "reason": "SomethingNew"}]}}),
    ] {
        let health = lua::health(&object).unwrap();
        assert!(
            ["Progressing", "Degraded"].contains(&health.status.as_str()),
            "{object}: {health:?}"
        );
    }
}
