//! End-to-end tests against the real control plane from tests/cluster (`make test` starts it).
mod apitoken;
mod cluster;
mod harness;
mod keysets;
mod proxy;
mod rotation;
mod validation;
mod verifier;
