//! Prints a CRD; `make crds` writes them to crds/: `crdgen` the ApiToken, `crdgen verifier` the
//! ApiTokenVerifier.
fn main() {
    match std::env::args().nth(1).as_deref() {
        None => print!("{}", apitoken_operator::crd_yaml()),
        Some("verifier") => print!("{}", apitoken_operator::verifier_crd_yaml()),
        Some(other) => {
            eprintln!("crdgen: unknown CRD {other:?} (want nothing or `verifier`)");
            std::process::exit(2);
        }
    }
}
