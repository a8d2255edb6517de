//! Prints the CRD; `make crds` writes it to crds/apitoken.yaml.
fn main() {
    print!("{}", apitoken_operator::crd_yaml());
}
