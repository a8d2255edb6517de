use kube::runtime::reflector::{self, store::Writer};

use super::*;
use crate::api::ApiTokenSpec;

fn token(ns: &str, name: &str, secret_name: Option<&str>) -> ApiToken {
    let spec = ApiTokenSpec {
        secret_name: secret_name.map(str::to_owned),
        ..ApiTokenSpec::default()
    };
    let mut t = ApiToken::new(name, spec);
    t.metadata.namespace = Some(ns.into());
    t
}

fn secret(ns: &str, name: &str) -> ObjectRef<Secret> {
    ObjectRef::new(name).within(ns)
}

/// The names `naming` gives for a Secret, sorted.
fn names(naming: &Naming, ns: &str, name: &str) -> Vec<String> {
    let mut found: Vec<_> = (naming.tokens(&secret(ns, name)))
        .into_iter()
        .map(|t| {
            assert_eq!(t.namespace.as_deref(), Some(ns));
            t.name
        })
        .collect();
    found.sort();
    found
}

/// A store and its naming, fed the same events in the order the controller feeds them.
struct Fixture {
    writer: Writer<ApiToken>,
    naming: Naming,
}

impl Fixture {
    fn new() -> Self {
        let (reader, writer) = reflector::store();
        Self {
            writer,
            naming: Naming::new(reader),
        }
    }

    fn see(&mut self, event: Event<ApiToken>) {
        self.writer.apply_watcher_event(&event);
        self.naming.saw(&event);
    }
}

#[test]
fn a_secret_is_named_by_the_apitoken_of_its_name_unless_that_names_another() {
    let mut f = Fixture::new();
    f.see(Event::Apply(token("a", "web", None)));
    f.see(Event::Apply(token("a", "api", Some("creds"))));
    assert_eq!(names(&f.naming, "a", "web"), ["web"]);
    assert_eq!(names(&f.naming, "a", "creds"), ["api"]);
    assert!(names(&f.naming, "a", "api").is_empty());
    assert!(names(&f.naming, "a", "other").is_empty());
}

#[test]
fn namespaces_are_apart() {
    let mut f = Fixture::new();
    f.see(Event::Apply(token("a", "web", None)));
    f.see(Event::Apply(token("a", "api", Some("creds"))));
    assert!(names(&f.naming, "b", "web").is_empty());
    assert!(names(&f.naming, "b", "creds").is_empty());
    let unnamespaced = ObjectRef::new("web");
    assert!(f.naming.tokens(&unnamespaced).is_empty());
}

#[test]
fn apitokens_in_conflict_over_one_secret_are_all_named_once() {
    let mut f = Fixture::new();
    f.see(Event::Apply(token("a", "x", None)));
    f.see(Event::Apply(token("a", "y", Some("x"))));
    f.see(Event::Apply(token("a", "z", Some("x"))));
    f.see(Event::Apply(token("a", "y", Some("x"))));
    assert_eq!(names(&f.naming, "a", "x"), ["x", "y", "z"]);
}

#[test]
fn a_deleted_apitoken_names_nothing() {
    let mut f = Fixture::new();
    f.see(Event::Apply(token("a", "y", Some("x"))));
    f.see(Event::Apply(token("a", "z", Some("x"))));
    f.see(Event::Delete(token("a", "y", Some("x"))));
    assert_eq!(names(&f.naming, "a", "x"), ["z"]);
    f.see(Event::Delete(token("a", "z", Some("x"))));
    assert!(names(&f.naming, "a", "x").is_empty());
    assert!(f.naming.index.lock().unwrap().current.is_empty());
    // A delete of what was never seen changes nothing.
    f.see(Event::Delete(token("a", "q", Some("x"))));
    assert!(names(&f.naming, "a", "x").is_empty());
}

#[test]
fn a_relist_replaces_the_index_when_it_is_complete() {
    let mut f = Fixture::new();
    f.see(Event::Apply(token("a", "old", Some("s"))));
    f.see(Event::Init);
    f.see(Event::InitApply(token("a", "new", Some("t"))));
    // Until the list is complete, the answers are those of the store's current copy.
    assert_eq!(names(&f.naming, "a", "s"), ["old"]);
    assert!(names(&f.naming, "a", "t").is_empty());
    f.see(Event::Apply(token("a", "live", Some("u"))));
    f.see(Event::InitDone);
    assert!(names(&f.naming, "a", "s").is_empty());
    assert_eq!(names(&f.naming, "a", "t"), ["new"]);
    assert_eq!(names(&f.naming, "a", "u"), ["live"]);
}

#[test]
fn a_delete_during_a_relist_is_not_brought_back_by_it() {
    let mut f = Fixture::new();
    f.see(Event::Init);
    f.see(Event::InitApply(token("a", "y", Some("x"))));
    f.see(Event::Delete(token("a", "y", Some("x"))));
    f.see(Event::InitDone);
    assert!(f.naming.index.lock().unwrap().current.is_empty());
}
