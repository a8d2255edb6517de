//! The control plane itself: garbage collection, namespace deletion, CRDs and RBAC are real.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config, ResourceExt};

use crate::harness::{TIMEOUT, TestNs, eventually};

#[tokio::test]
async fn garbage_collector_deletes_dependents_and_namespaces_terminate() {
    let ns = TestNs::new("e2e-gc").await;
    let maps: Api<ConfigMap> = ns.api();
    let owner = maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("owner"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut dependent = ConfigMap {
        metadata: meta("dependent"),
        ..Default::default()
    };
    dependent.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        ..Default::default()
    }]);
    maps.create(&PostParams::default(), &dependent)
        .await
        .unwrap();

    maps.delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the garbage collector to delete the dependent",
        Duration::from_secs(60),
        || async {
            maps.get_opt("dependent")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;

    let namespaces: Api<Namespace> = Api::all(ns.client.clone());
    let name = ns.name.clone();
    ns.delete_namespace().await;
    eventually(
        "the namespace to finish terminating",
        Duration::from_secs(60),
        || async {
            namespaces
                .get_opt(&name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn custom_resource_definitions_are_served() {
    let ns = TestNs::new("e2e-crd").await;
    let crd: CustomResourceDefinition = serde_yaml::from_str(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.e2e.apitoken.dev}
spec:
  group: e2e.apitoken.dev
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
"#,
    )
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let name = crd.name_any();
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(TIMEOUT, established)
        .await
        .expect("established in time")
        .unwrap();

    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("e2e.apitoken.dev", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    let widget = DynamicObject::new("w1", &resource).data(serde_json::json!({"spec": {"size": 3}}));
    // The first requests after Established can still race discovery; retry briefly.
    eventually("the new resource to accept objects", TIMEOUT, || async {
        widgets.create(&PostParams::default(), &widget).await.ok()
    })
    .await;
    let read = widgets.get("w1").await.unwrap();
    assert_eq!(read.data["spec"]["size"], 3);
    ns.delete_namespace().await;
}

#[tokio::test]
async fn rbac_denies_the_operator_identity_until_a_role_grants_access() {
    let ns = TestNs::new("e2e-rbac").await;
    let path = std::path::Path::new(&std::env::var("KUBECONFIG").unwrap())
        .with_file_name("operator.kubeconfig");
    let kubeconfig =
        Kubeconfig::read_from(&path).expect("operator.kubeconfig next to the admin kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let operator = Client::try_from(config).unwrap();
    let as_operator: Api<Secret> = Api::namespaced(operator, &ns.name);

    match as_operator.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }

    let role = Role {
        metadata: meta("read-secrets"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
    };
    ns.api::<Role>()
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: meta("read-secrets"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "read-secrets".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: "apitoken-operator".into(),
            ..Default::default()
        }]),
    };
    ns.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    eventually("the RoleBinding to take effect", TIMEOUT, || async {
        as_operator.list(&Default::default()).await.ok()
    })
    .await;
    // Still only what was granted: writing is denied.
    let secret = Secret {
        metadata: meta("nope"),
        ..Default::default()
    };
    match as_operator.create(&PostParams::default(), &secret).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!(
            "expected 403 on create, got {:?}",
            other.map(|s| s.name_any())
        ),
    }
    ns.delete_namespace().await;
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}
